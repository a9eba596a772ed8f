"""The ROS 2 launch files in launch/: they compile, declare their arguments, start only console
scripts of setup.py with params files that exist, and build the expected graph.

ROS 2's `launch` cannot be installed here, so their code is run against recording stand-ins of
the launch / launch_ros classes (test/launch_stubs.py); where the real packages import (a ROS 2
host) `generate_launch_description()` is also checked to return a real LaunchDescription.
"""

import ast
import importlib
import importlib.util
import py_compile
import sys
from pathlib import Path

import pytest

from test import launch_stubs
from vidplan_ros.bringup.graph import model_info

REPO = Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch'
CONFIG = REPO / 'config'
COMMON = {'model', 'method', 'device'}
EXPECTED_ARGUMENTS = {
    'franka.launch.py': {'robot', 'robot_ip', 'robot_type', 'arm_controller',
                         'joint_states_topic', 'top_camera_topic', 'front_camera_topic',
                         'wrist_camera_topic', 'image_transport', 'bringup', 'load_gripper',
                         'use_fake_hardware'},
    'g1.launch.py': {'robot', 'lowcmd', 'network_interface', 'domain_id', 'head_camera_topic',
                     'front_camera_topic', 'image_transport'},
    'sim.launch.py': {'robot', 'task', 'episodes', 'seed', 'episode_time_s'},
    'replay.launch.py': {'bag', 'rate', 'loop', 'start_offset', 'topics', 'robot',
                         'image_transport'},
    'gazebo_franka.launch.py': {'robot_type', 'load_gripper', 'gz_args', 'gz_msgs',
                                'arm_controller', 'top_camera_gz_topic',
                                'front_camera_gz_topic', 'wrist_camera_gz_topic'},
    'isaac_franka.launch.py': {'robot', 'joint_command_topic', 'joint_states_topic',
                               'top_camera_topic', 'front_camera_topic', 'wrist_camera_topic',
                               'image_transport'},
}
PIPELINE = ('vidplan_perception', 'vidplan_planner', 'vidplan_grounding', 'vidplan_executor')
ROS_LAUNCH_TEST = REPO / 'test' / 'test_launch_ros_sim.py'
# the cameras of the bundled model sets (config.json data.cameras), in the model's view order
FRANKA_CAMERAS = model_info('franka_push').cameras


def setup_nodes() -> dict[str, str]:
    """setup.py's NODES (console script -> module:function), read without running setup()."""
    tree = ast.parse((REPO / 'setup.py').read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, 'id', '') == 'NODES'
                                                for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError('setup.py has no NODES dict')


def launch_files() -> list[Path]:
    return sorted(LAUNCH.glob('*.launch.py'))


def arguments_of(path: Path) -> dict:
    """The module-level ARGUMENTS / COMMON_ARGUMENTS dict literal of a launch module."""
    tree = ast.parse(path.read_text())
    found = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and getattr(
                node.targets[0], 'id', '') in ('ARGUMENTS', 'COMMON_ARGUMENTS'):
            found.update(ast.literal_eval(node.value))
    return found


def test_the_expected_launch_files_exist():
    assert {p.name for p in launch_files()} == set(EXPECTED_ARGUMENTS)


@pytest.mark.parametrize('name', sorted(EXPECTED_ARGUMENTS))
def test_launch_file_compiles_and_declares_its_arguments(name, tmp_path):
    path = LAUNCH / name
    py_compile.compile(str(path), cfile=str(tmp_path / 'out.pyc'), doraise=True)
    tree = ast.parse(path.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert 'generate_launch_description' in functions
    declared = set(arguments_of(path)) | set(arguments_of(LAUNCH / 'vidplan_launch_common.py'))
    assert EXPECTED_ARGUMENTS[name] | COMMON <= declared, declared
    for arg, (default, description) in arguments_of(path).items():
        assert default is None or isinstance(default, str), (arg, default)
        assert isinstance(description, str) and description, arg


def test_literal_yaml_names_in_launch_files_exist_in_config():
    for path in [*launch_files(), LAUNCH / 'vidplan_launch_common.py']:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and node.value.endswith('.yaml') and '/' not in node.value:
                assert (CONFIG / node.value).is_file(), f'{path.name}: {node.value}'


def test_graph_nodes_are_setup_console_scripts_with_existing_params_files():
    from vidplan_ros.bringup.graph import NODE_MODULES, pipeline_nodes, sim_node
    nodes = setup_nodes()
    for exe, module in NODE_MODULES.items():
        if exe in nodes:
            assert nodes[exe] == f'{module}:main'
    for model in ('franka_reach', 'franka_push', 'g1_reach'):
        entries = pipeline_nodes(model, method='gvp_wm', use_sim_time=True)
        entries.append(sim_node('franka_fr3', 'franka/reach', 1))
        assert [e.executable for e in entries[:4]] == list(PIPELINE)
        for entry in entries:
            assert entry.executable in nodes, f'{entry.executable} is not in setup.py NODES'
            assert (REPO / (entry.module.replace('.', '/') + '.py')).is_file()
            for params_file in entry.params_files:
                assert (CONFIG / params_file).is_file(), params_file


# --- running the launch files' code against the stand-ins -----------------------------------

def run_launch_file(name: str, **arguments: str) -> tuple[list, list]:
    """(the LaunchDescription's entities, the actions its OpaqueFunctions return) for the
    declared defaults overridden by `arguments`."""
    saved_path = list(sys.path)
    with launch_stubs.installed():
        try:
            spec = importlib.util.spec_from_file_location(f'launch_{name[:-10]}', LAUNCH / name)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            ld = module.generate_launch_description()
            assert isinstance(ld, launch_stubs.LaunchDescription)
            values = {e.name: e.default_value for e in ld.entities
                      if isinstance(e, launch_stubs.DeclareLaunchArgument)}
            values.update(arguments)
            missing = [k for k, v in values.items() if v is None]
            assert not missing, f'required arguments not given: {missing}'
            context = launch_stubs.Context(values)
            actions = []
            for entity in ld.entities:
                if isinstance(entity, launch_stubs.OpaqueFunction):
                    actions += entity.function(context, *entity.args, **entity.kwargs)
            return ld.entities, actions
        finally:
            sys.path[:] = saved_path


def vidplan_nodes(actions: list) -> dict:
    return {a.executable: a for a in actions
            if isinstance(a, launch_stubs.Node) and a.package == 'vidplan_ros'}


def params_of(node) -> dict:
    merged = {}
    for p in node.parameters:
        if isinstance(p, dict):
            merged.update(p)
    return merged


def check_vidplan_nodes(actions: list, use_sim_time: bool) -> dict:
    nodes = vidplan_nodes(actions)
    scripts = setup_nodes()
    assert set(PIPELINE) <= set(nodes)
    for exe, node in nodes.items():
        assert exe in scripts, exe
        assert node.node_name == exe and node.output == 'screen'
        assert isinstance(node.on_exit, launch_stubs.Shutdown)   # required: ends the launch
        for p in node.parameters:
            if isinstance(p, str):
                assert Path(p).is_file() and Path(p).parent == CONFIG, p
        if exe != 'vidplan_sim':
            assert params_of(node).get('use_sim_time', False) is use_sim_time, exe
    return nodes


def test_sim_launch_runs_the_sim_and_the_pipeline_on_sim_time():
    _, actions = run_launch_file('sim.launch.py', model='franka_push', episodes='2',
                                 method='inverse_dynamics', backend='torch')
    nodes = check_vidplan_nodes(actions, use_sim_time=True)
    assert [params_of(nodes[e]).get('backend') for e in PIPELINE] == ['torch'] * 3 + [None]
    sim = params_of(nodes['vidplan_sim'])
    assert sim['robot'] == 'franka_fr3' and sim['task'] == 'franka/push'
    assert sim['episodes'] == 2 and sim['cameras'] == list(FRANKA_CAMERAS)
    assert params_of(nodes['vidplan_grounding'])['method'] == 'inverse_dynamics'
    assert all(params_of(nodes[e])['model'] == 'franka_push' for e in PIPELINE[:3])
    assert params_of(nodes['vidplan_executor'])['robot'] == 'franka_fr3'


def test_franka_launch_remaps_cameras_controller_and_includes_bringup_on_request():
    assert {'top', 'front'} <= set(FRANKA_CAMERAS)
    _, actions = run_launch_file('franka.launch.py', model='franka_push',
                                 front_camera_topic='/front/color/image_raw',
                                 wrist_camera_topic='/wrist/color/image_raw',
                                 arm_controller='my_jtc', joint_states_topic='/franka/js')
    nodes = check_vidplan_nodes(actions, use_sim_time=False)
    assert not [a for a in actions if isinstance(a, launch_stubs.IncludeLaunchDescription)]
    remaps = dict(nodes['vidplan_perception'].remappings)
    assert remaps['/cameras/front/image_raw'] == '/front/color/image_raw'
    assert remaps['/cameras/front/image_raw/compressed'] == '/front/color/image_raw/compressed'
    assert '/cameras/top/image_raw' not in remaps            # the default topic: no remap
    if 'wrist' not in FRANKA_CAMERAS:                        # not the model's: not remapped
        assert '/cameras/wrist/image_raw' not in remaps
    _, top_actions = run_launch_file('franka.launch.py', model='franka_push',
                                     top_camera_topic='/top/color/image_raw')
    top_remaps = dict(vidplan_nodes(top_actions)['vidplan_perception'].remappings)
    assert top_remaps['/cameras/top/image_raw'] == '/top/color/image_raw'
    assert top_remaps['/cameras/top/image_raw/compressed'] == '/top/color/image_raw/compressed'
    assert remaps['/joint_states'] == '/franka/js'
    ex = dict(nodes['vidplan_executor'].remappings)
    assert ex['/fr3_arm_controller/joint_trajectory'] == '/my_jtc/joint_trajectory'
    assert ex['/joint_states'] == '/franka/js'

    _, actions = run_launch_file('franka.launch.py', bringup='franka', robot_ip='10.0.0.2')
    include, = [a for a in actions if isinstance(a, launch_stubs.IncludeLaunchDescription)]
    assert include.source.path.endswith('franka_bringup/launch/franka.launch.py')
    assert include.launch_arguments['robot_ip'] == '10.0.0.2'
    spawner, = [a for a in actions if isinstance(a, launch_stubs.Node)
                and a.executable == 'spawner']
    assert spawner.arguments[0] == 'fr3_arm_controller'
    param_file = spawner.arguments[spawner.arguments.index('--param-file') + 1]
    assert Path(param_file) == CONFIG / 'franka_arm_controller.yaml'

    _, actions = run_launch_file('franka.launch.py', bringup='moveit')
    include, = [a for a in actions if isinstance(a, launch_stubs.IncludeLaunchDescription)]
    assert include.source.path.endswith('franka_fr3_moveit_config/launch/moveit.launch.py')
    with pytest.raises(ValueError, match='bringup'):
        run_launch_file('franka.launch.py', bringup='both')


def test_g1_launch_picks_the_lowcmd_topic_and_pins_dds():
    _, actions = run_launch_file('g1.launch.py', network_interface='eth0')
    nodes = check_vidplan_nodes(actions, use_sim_time=False)
    executor = params_of(nodes['vidplan_executor'])
    assert executor['robot'] == 'unitree_g1' and executor['interface'] == 'unitree_arm_sdk'
    assert params_of(nodes['vidplan_perception'])['model'] == 'g1_reach'
    env = {a.name: a.value for a in actions
           if isinstance(a, launch_stubs.SetEnvironmentVariable)}
    assert env['RMW_IMPLEMENTATION'] == 'rmw_cyclonedds_cpp' and env['ROS_DOMAIN_ID'] == '0'
    assert 'name="eth0"' in env['CYCLONEDDS_URI']
    _, actions = run_launch_file('g1.launch.py', lowcmd='lowcmd', domain_id='1')
    assert params_of(vidplan_nodes(actions)['vidplan_executor'])['interface'] == \
        'unitree_lowcmd'
    with pytest.raises(ValueError, match='lowcmd'):
        run_launch_file('g1.launch.py', lowcmd='both')


def test_replay_launch_plays_only_inputs_with_the_executor_in_shadow_mode():
    entities, _ = run_launch_file('replay.launch.py', bag='/bags/b')
    bag_arg, = [e for e in entities if getattr(e, 'name', '') == 'bag']
    assert bag_arg.default_value is None                      # required
    _, actions = run_launch_file('replay.launch.py', bag='/bags/b', model='franka_push')
    nodes = check_vidplan_nodes(actions, use_sim_time=True)
    assert params_of(nodes['vidplan_executor'])['shadow'] is True
    play, = [a for a in actions if isinstance(a, launch_stubs.ExecuteProcess)
             and not isinstance(a, launch_stubs.Node)]
    assert play.cmd[:4] == ['ros2', 'bag', 'play', '/bags/b'] and '--clock' in play.cmd
    topics = play.cmd[play.cmd.index('--topics') + 1:]
    assert topics == [*(f'/cameras/{cam}/image_raw' for cam in FRANKA_CAMERAS), '/joint_states']
    assert isinstance(play.on_exit, launch_stubs.Shutdown)
    _, actions = run_launch_file('replay.launch.py', bag='/b', loop='true',
                                 image_transport='compressed')
    play, = [a for a in actions if type(a) is launch_stubs.ExecuteProcess]
    assert '--loop' in play.cmd and play.on_exit is None
    assert [t for t in play.cmd if t.startswith('/cameras/')] == [   # the default model's
        f'/cameras/{cam}/image_raw/compressed' for cam in model_info('franka_reach').cameras]
    assert params_of(vidplan_nodes(actions)['vidplan_perception'])['image_transport'] == \
        'compressed'


def test_gazebo_launch_spawns_the_robot_bridges_clock_and_cameras_on_sim_time():
    _, actions = run_launch_file('gazebo_franka.launch.py', model='franka_push',
                                 gz_msgs='ignition.msgs')
    check_vidplan_nodes(actions, use_sim_time=True)
    others = {a.executable: a for a in actions if isinstance(a, launch_stubs.Node)
              and a.package != 'vidplan_ros'}
    bridge = others['parameter_bridge']
    assert bridge.arguments == ['/clock@rosgraph_msgs/msg/Clock[ignition.msgs.Clock'] + [
        f'/{cam}_camera/image@sensor_msgs/msg/Image[ignition.msgs.Image'
        for cam in FRANKA_CAMERAS]                      # the model's cameras only
    assert dict(bridge.remappings) == {f'/{cam}_camera/image': f'/cameras/{cam}/image_raw'
                                       for cam in FRANKA_CAMERAS}
    _, top_actions = run_launch_file('gazebo_franka.launch.py', model='franka_push',
                                     top_camera_gz_topic='/world/table/top/image')
    top_bridge, = [a for a in top_actions if isinstance(a, launch_stubs.Node)
                   and a.executable == 'parameter_bridge']
    assert dict(top_bridge.remappings)['/world/table/top/image'] == '/cameras/top/image_raw'
    rsp = params_of(others['robot_state_publisher'])
    assert rsp['use_sim_time'] is True and 'gazebo' in rsp['robot_description']
    assert others['create'].arguments[:2] == ['-topic', '/robot_description']
    handler, = [a for a in actions if isinstance(a, launch_stubs.RegisterEventHandler)]
    assert handler.event_handler.target_action is others['create']
    spawned = [n.arguments[0] for n in handler.event_handler.on_exit]
    assert spawned == ['joint_state_broadcaster', 'fr3_arm_controller']
    arm = handler.event_handler.on_exit[1]
    assert Path(arm.arguments[arm.arguments.index('--param-file') + 1]) == \
        CONFIG / 'gazebo_franka_controllers.yaml'
    include, = [a for a in actions if isinstance(a, launch_stubs.IncludeLaunchDescription)]
    assert include.source.path.endswith('ros_gz_sim/launch/gz_sim.launch.py')


def test_isaac_launch_commands_joint_state_on_sim_time():
    _, actions = run_launch_file('isaac_franka.launch.py', joint_command_topic='/isaac_cmd')
    nodes = check_vidplan_nodes(actions, use_sim_time=True)
    executor = nodes['vidplan_executor']
    assert params_of(executor)['interface'] == 'joint_state_command'
    assert params_of(executor)['robot'] == 'franka_panda'
    assert dict(executor.remappings)['/joint_command'] == '/isaac_cmd'
    assert dict(nodes['vidplan_perception'].remappings)['/cameras/wrist/image_raw'] == \
        '/wrist/rgb'                               # the default model, franka_reach: top + wrist
    _, actions = run_launch_file('isaac_franka.launch.py', model='franka_push')
    assert dict(vidplan_nodes(actions)['vidplan_perception'].remappings)[
        '/cameras/front/image_raw'] == '/rgb'


def test_real_launch_description_where_launch_imports():
    try:
        import launch  # noqa: F401
        import launch_ros  # noqa: F401
    except ImportError as exc:
        reason = (f'ROS 2 launch / launch_ros do not import here ({exc}); the launch files ran '
                  'against test/launch_stubs.py above instead')
        print(reason)
        pytest.skip(reason)
    from launch import LaunchDescription
    for path in launch_files():
        spec = importlib.util.spec_from_file_location(f'real_{path.stem[:-7]}', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        assert isinstance(module.generate_launch_description(), LaunchDescription), path.name


def test_a_launch_testing_test_exists_for_ros_hosts():
    text = ROS_LAUNCH_TEST.read_text()
    assert 'generate_test_description' in text and 'launch_test' in text
    assert 'allow_module_level=True' in text          # skipped, with its reason, off ROS
    if importlib.util.find_spec('launch_testing') is None:
        print('launch_testing is not installed: test/test_launch_ros_sim.py skips itself here')


# --- ros2_control, franka_ros2 and rosbag2 as the upstream sources define them (issue 11) ----

def spawners(actions: list) -> list:
    found = [a for a in actions if isinstance(a, launch_stubs.Node) and a.executable == 'spawner']
    for handler in [a for a in actions if isinstance(a, launch_stubs.RegisterEventHandler)]:
        found += [a for a in handler.event_handler.on_exit
                  if isinstance(a, launch_stubs.Node) and a.executable == 'spawner']
    return found


def controller_params(path: Path, controller: str) -> dict:
    import yaml
    return yaml.safe_load(path.read_text())[controller]['ros__parameters']


def test_spawners_take_the_controller_type_from_the_param_file():
    """ros2_control 4.15.0 removed `spawner --controller-type` (controller_manager/spawner.py,
    #1639); the type comes from `<controller>.ros__parameters.type` in --param-file."""
    runs = [run_launch_file('franka.launch.py', bringup='franka')[1],
            run_launch_file('gazebo_franka.launch.py')[1]]
    checked = 0
    for actions in runs:
        for spawner in spawners(actions):
            assert '--controller-type' not in spawner.arguments and '-t' not in spawner.arguments
            if '--param-file' in spawner.arguments:
                path = Path(spawner.arguments[spawner.arguments.index('--param-file') + 1])
                params = controller_params(path, spawner.arguments[0])
                assert params['type'] == 'joint_trajectory_controller/JointTrajectoryController'
                checked += 1
    assert checked == 2


@pytest.mark.parametrize('name', ['franka_arm_controller.yaml', 'gazebo_franka_controllers.yaml'])
def test_our_trajectory_controllers_accept_chunks_that_end_moving(name):
    """Jazzy's JTC defaults allow_nonzero_velocity_at_trajectory_end to false and rejects the
    executor's chunks; i_clamp is deprecated there (ros2_controllers jazzy
    joint_trajectory_controller_parameters.yaml)."""
    params = controller_params(CONFIG / name, 'fr3_arm_controller')
    assert params['allow_nonzero_velocity_at_trajectory_end'] is True
    for joint, gains in params.get('gains', {}).items():
        assert 'i_clamp' not in gains and gains['i_clamp_min'] <= 0 <= gains['i_clamp_max'], joint


def test_moveit_bringup_sets_the_moving_end_parameter_on_its_controller():
    _, actions = run_launch_file('franka.launch.py', bringup='moveit')
    setter, = [a for a in actions if type(a) is launch_stubs.ExecuteProcess]
    assert 'ros2 param set /fr3_arm_controller allow_nonzero_velocity_at_trajectory_end true' \
        in setter.cmd[-1]
    with pytest.raises(ValueError, match='fr3_arm_controller'):
        run_launch_file('franka.launch.py', bringup='franka', arm_controller='my_jtc')


def test_franka_launch_can_send_follow_joint_trajectory_goals():
    _, actions = run_launch_file('franka.launch.py', command='action', arm_controller='my_jtc')
    executor = vidplan_nodes(actions)['vidplan_executor']
    assert params_of(executor)['interface'] == 'follow_joint_trajectory'
    remaps = dict(executor.remappings)
    assert remaps['/fr3_arm_controller/follow_joint_trajectory'] == \
        '/my_jtc/follow_joint_trajectory'
    with pytest.raises(ValueError, match='command'):
        run_launch_file('franka.launch.py', command='both')


def description_source(actions: list) -> tuple[str, str]:
    rsp, = [a for a in actions if isinstance(a, launch_stubs.Node)
            and a.executable == 'robot_state_publisher']
    text = params_of(rsp)['robot_description']
    return text.split('source="')[1].split('"')[0], text.split('mappings="')[1].split('"')[0]


def test_gazebo_description_is_the_upstream_one_with_its_plugin_and_messages():
    """franka_gazebo_bringup's franka_arm.gazebo.xacro (gz_ros2_control/GazeboSimSystem with
    gazebo_effort false, Harmonic: gz.msgs), or franka_description's fr3.urdf.xacro with gazebo
    and ros2_control (franka_ign_ros2_control/IgnitionSystem, Fortress: ignition.msgs)."""
    _, actions = run_launch_file('gazebo_franka.launch.py')
    source, mappings = description_source(actions)
    assert source.endswith('franka_gazebo_bringup/urdf/franka_arm.gazebo.xacro')
    assert "'gazebo_effort': 'false'" in mappings and "'robot_type': 'fr3'" in mappings
    bridge, = [a for a in actions if isinstance(a, launch_stubs.Node)
               and a.executable == 'parameter_bridge']
    assert '/clock@rosgraph_msgs/msg/Clock[gz.msgs.Clock' in bridge.arguments
    env = {a.name: a.value for a in actions if isinstance(a, launch_stubs.SetEnvironmentVariable)}
    assert env['GZ_SIM_RESOURCE_PATH'] == str(launch_stubs.FAKE_SHARE)

    _, actions = run_launch_file('gazebo_franka.launch.py', description='franka_description')
    source, mappings = description_source(actions)
    assert source.endswith('franka_description/robots/fr3/fr3.urdf.xacro')
    assert "'ros2_control': 'true'" in mappings and "'gazebo': 'true'" in mappings
    bridge, = [a for a in actions if isinstance(a, launch_stubs.Node)
               and a.executable == 'parameter_bridge']
    assert '/clock@rosgraph_msgs/msg/Clock[ignition.msgs.Clock' in bridge.arguments
    with pytest.raises(ValueError, match='description'):
        run_launch_file('gazebo_franka.launch.py', description='urdf')


def test_package_declares_what_the_launch_files_and_actions_need():
    """Humble's rosbag2 has no mcap plugin by default (ros2/rosbag2 humble
    rosbag2_storage_default_plugins/package.xml); the executor's actions use control_msgs."""
    import xml.etree.ElementTree as ET
    deps = {e.text for e in ET.parse(REPO / 'package.xml').getroot().iter('exec_depend')}
    assert {'rosbag2_storage_mcap', 'ros2bag', 'control_msgs', 'action_msgs'} <= deps
    from vidplan_ros.core.robot_spec import COMMAND_INTERFACES
    assert COMMAND_INTERFACES['follow_joint_trajectory'][0] == \
        'control_msgs/action/FollowJointTrajectory'
