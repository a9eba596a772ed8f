"""Bundled robot specs load, agree with the reference, and bad specs fail clearly."""

import math

import numpy as np
import pytest
import yaml

from vidplan_ros.core.errors import ConfigError, VidplanError
from vidplan_ros.core.robot_spec import (COMMAND_INTERFACES, ROBOT_ALIASES, RobotInterfaces,
                                         available_robots, is_unitree_interface,
                                         load_robot_spec, robot_spec_path)


def test_bundled_robots_load():
    assert {'franka_fr3', 'franka_panda', 'unitree_g1'} <= set(available_robots())
    for name in available_robots():
        spec = load_robot_spec(name)
        lo, hi = np.array(spec.position_min_rad), np.array(spec.position_max_rad)
        assert np.all((lo <= spec.ready_pose_rad) & (np.array(spec.ready_pose_rad) <= hi))


def test_unitree_interfaces_are_the_lowcmd_ones_of_the_table():
    assert {i for i in COMMAND_INTERFACES if is_unitree_interface(i)} == \
        {'unitree_arm_sdk', 'unitree_lowcmd'}
    assert not is_unitree_interface('no_such_interface')
    assert load_robot_spec('unitree_g1').interfaces.unitree
    assert not load_robot_spec('franka_panda').interfaces.unitree


def test_franka_fr3_matches_reference():
    spec = load_robot_spec('franka_fr3')
    assert spec.joint_names == tuple(f'fr3_joint{i}' for i in range(1, 8))
    assert spec.position_max_rad[3] == -0.1518 and spec.position_min_rad[5] == 0.5445
    assert spec.velocity_max_rad_s[4] == 5.26 and set(spec.jerk_max_rad_s3) == {5000.0}
    assert spec.ready_pose_rad[3] == pytest.approx(-3 * math.pi / 4)
    assert spec.interfaces.joint_trajectory_topic == '/fr3_arm_controller/joint_trajectory'
    assert spec.gripper.joint_names == ('fr3_finger_joint1', 'fr3_finger_joint2')


def test_unitree_g1_slots_follow_lowcmd_layout():
    spec = load_robot_spec('unitree_g1')
    assert spec.num_joints == 17
    assert dict(zip(spec.joint_names, spec.unitree.motor_indices))['left_shoulder_pitch_joint'] \
        == 15
    assert dict(zip(spec.joint_names, spec.unitree.motor_indices))['right_wrist_yaw_joint'] == 28
    assert spec.unitree.arm_sdk_weight_slot == 29
    # both LowCmd topics come from the spec (the executor and the graph used to hard-code them)
    assert spec.interfaces.command() == ('unitree_hg/msg/LowCmd', '/arm_sdk')
    assert spec.interfaces.command('unitree_lowcmd') == ('unitree_hg/msg/LowCmd', '/lowcmd')


def test_joints_matched_by_name():
    spec = load_robot_spec('franka_fr3')
    names = ['fr3_finger_joint1'] + list(reversed(spec.joint_names))
    idx = spec.indices_of(names)
    assert [names[i] for i in idx] == list(spec.joint_names)
    with pytest.raises(VidplanError, match='fr3_joint7'):
        spec.indices_of(list(spec.joint_names[:6]))


def user_robot(tmp_path, **changes):
    """A user's own robot file: the FR3 file with some values changed."""
    doc = yaml.safe_load(robot_spec_path('franka_fr3').read_text())
    params = doc['/**']['ros__parameters']
    params.update(name='my_arm', **changes)
    path = tmp_path / 'my_arm.yaml'
    path.write_text(yaml.safe_dump(doc))
    return path


def test_a_user_adds_a_robot_with_a_yaml_file(tmp_path):
    spec = load_robot_spec(str(user_robot(tmp_path)))
    assert spec.name == 'my_arm' and spec.num_joints == 7


@pytest.mark.parametrize('changes, key, allowed', [
    ({'velocity_max_rad_s': [2.62, -1.0, 2.62, 2.62, 5.26, 4.18, 5.26]},
     'velocity_max_rad_s', '> 0'),
    ({'position_min_rad': [3.0, -1.7837, -2.9007, -3.0421, -2.8065, 0.5445, -3.0159]},
     'position_max_rad', 'fr3_joint1'),
    ({'kp': [600.0, 600.0]}, 'kp', 'a list of 7 values'),
    ({'ready_pose_rad': [0.0] * 7}, 'ready_pose_rad', 'fr3_joint4'),
    ({'interfaces': {'command_interface': 'telepathy'}}, 'interfaces.command_interface',
     'joint_trajectory'),
])
def test_bad_robot_values_are_named(tmp_path, changes, key, allowed):
    with pytest.raises(ConfigError) as err:
        load_robot_spec(str(user_robot(tmp_path, **changes)))
    print(err.value)
    assert err.value.key == key and allowed in str(err.value) and 'my_arm.yaml' in str(err.value)


def test_unknown_robot_lists_bundled_ones():
    with pytest.raises(VidplanError, match='franka_fr3'):
        load_robot_spec('kuka_iiwa')


def test_command_interface_table_gives_type_and_topic_from_the_spec():
    fr3 = load_robot_spec('franka_fr3').interfaces
    assert fr3.command() == ('trajectory_msgs/msg/JointTrajectory',
                             '/fr3_arm_controller/joint_trajectory')
    assert fr3.command('follow_joint_trajectory') == (
        'control_msgs/action/FollowJointTrajectory', '/fr3_arm_controller/follow_joint_trajectory')
    assert fr3.command('joint_state_command') == ('sensor_msgs/msg/JointState', '/joint_command')
    with pytest.raises(VidplanError, match='arm_sdk_topic'):
        fr3.command('unitree_arm_sdk')              # an FR3 has no LowCmd topic
    with pytest.raises(VidplanError, match='telepathy'):
        fr3.command('telepathy')
    # every interface's topic field exists on RobotInterfaces
    fields = RobotInterfaces.__dataclass_fields__
    assert all(key in fields for _, key in COMMAND_INTERFACES.values())


def test_short_robot_names_resolve_everywhere_from_one_table():
    from vidplan_ros.bringup.graph import command_topic
    for short, name in ROBOT_ALIASES.items():
        assert load_robot_spec(short).name == name
    assert command_topic('g1', 'unitree_lowcmd') == ('unitree_hg/msg/LowCmd', '/lowcmd')


def test_joint_aliases_match_panda_names_for_an_fr3_and_back():
    """Isaac's Franka publishes panda_* joints; an FR3 model set reads them by alias, and a
    Panda executor takes the fr3_* plans of that model set (issue 11, defect 5)."""
    fr3, panda = load_robot_spec('franka_fr3'), load_robot_spec('franka_panda')
    assert fr3.joint_aliases == panda.joint_names and panda.joint_aliases == fr3.joint_names
    isaac = ['panda_finger_joint1', *reversed(panda.joint_names), 'panda_finger_joint2']
    assert fr3.names_in(isaac) == panda.joint_names
    assert [isaac[i] for i in fr3.indices_of(isaac)] == list(panda.joint_names)
    assert panda.names_in(list(fr3.joint_names)) == fr3.joint_names
    assert fr3.names_in(list(fr3.joint_names)) == fr3.joint_names   # own names first
    with pytest.raises(VidplanError, match='panda_joint'):
        fr3.indices_of(['panda_joint1', 'fr3_joint2'])             # neither set complete


def test_joint_aliases_must_be_one_per_joint_and_new_names(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_robot_spec(str(user_robot(tmp_path, joint_aliases=['a', 'b'])))
    assert err.value.key == 'joint_aliases'
    with pytest.raises(ConfigError) as err:
        load_robot_spec(str(user_robot(tmp_path, joint_aliases=[f'fr3_joint{i}'
                                                                 for i in range(1, 8)])))
    assert err.value.key == 'joint_aliases' and 'none of them' in str(err.value)
