"""`vidplan launch sim` without ROS: the process graph it builds, the start gate, and the
monitor's run video and summary (on synthetic inputs; the full run is the nodes' integration
test)."""

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.bringup.graph import (NodeEntry, model_info, param_value, pipeline_nodes,
                                      process_argv, ros_args)
from vidplan_ros.bringup.vidplan_launch import format_report, main, nodes_graph, sim_graph
from vidplan_ros.nodes.monitor_node import MonitorConfig, RunRecorder, fit
from vidplan_ros.transport.base import parse_ros_args

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / 'config'


def argv_params(argv) -> tuple[list[str], dict]:
    """(params files, -p values) of a command line with --ros-args."""
    args = parse_ros_args(list(argv))
    return list(args.params_files), args.overrides


def test_sim_graph_processes_names_argv_params_and_required(tmp_path):
    specs = sim_graph('franka', 'push', episodes=2, out_dir=tmp_path / 'run', seed=5,
                      method='mpc_cem', threads=1)
    assert [s.name for s in specs] == ['sim', 'perception', 'planner', 'grounding', 'executor',
                                       'monitor']
    assert all(s.required for s in specs)
    assert all(s.env.get('OMP_NUM_THREADS', '1') == '1' for s in specs)
    by = {s.name: s.argv for s in specs}

    # the sim starts through the gate, once every pipeline node publishes
    sim = list(by['sim'])
    assert sim[:3] == [sys.executable, '-m', 'vidplan_ros.bringup.gate']
    gate, command = sim[:sim.index('--')], sim[sim.index('--') + 1:]
    waits = [gate[i + 1] for i, a in enumerate(gate) if a == '--wait']
    assert waits == ['sensor_msgs/msg/Image:/vidplan/latent',
                     'sensor_msgs/msg/Image:/vidplan/video_plan',
                     'trajectory_msgs/msg/JointTrajectory:/vidplan/grounded_plan',
                     'trajectory_msgs/msg/JointTrajectory:/fr3_arm_controller/joint_trajectory']
    files, params = argv_params(command)
    assert files == []
    cameras = list(model_info('franka_push').cameras)        # the model set's, in its order
    assert params == {'robot': 'franka_fr3', 'task': 'franka/push', 'episodes': 2, 'seed': 5,
                      'cameras': cameras, 'image_width': 64, 'image_height': 64}
    assert parse_ros_args(command).node_name == 'vidplan_sim'

    expected_files = {'perception': ['perception.yaml'], 'planner': ['planner.yaml'],
                      'grounding': ['grounding.yaml', 'grounding_node.yaml'],
                      'executor': ['executor.yaml']}
    for name, names in expected_files.items():
        files, params = argv_params(by[name])
        assert files == [str(CONFIG / n) for n in names]
        assert all(Path(f).is_file() for f in files)
        assert params['use_sim_time'] is True
        assert parse_ros_args(list(by[name])).node_name == f'vidplan_{name}'
        if name != 'executor':
            assert params['model'] == 'franka_push' and params['threads'] == 1
    assert argv_params(by['planner'])[1]['noise_seed'] == 5
    assert argv_params(by['grounding'])[1]['method'] == 'mpc_cem'
    assert argv_params(by['executor'])[1] == {'robot': 'franka_fr3', 'use_sim_time': True}

    monitor = by['monitor']
    assert monitor[:3] == (sys.executable, '-m', 'vidplan_ros.nodes.monitor_node')
    assert argv_params(monitor)[1] == {'out_dir': str(tmp_path / 'run'),
                                       'cameras': cameras}


def test_sim_graph_g1_waits_for_arm_sdk_and_checks_the_model_robot():
    specs = sim_graph('g1', 'reach', episodes=1, realtime_factor=0.5)
    sim = list(specs[0].argv)
    assert 'unitree_hg/msg/LowCmd:/arm_sdk' in sim
    files, params = argv_params(sim[sim.index('--') + 1:])
    assert params['robot'] == 'unitree_g1' and params['task'] == 'g1/reach'
    assert params['realtime_factor'] == 0.5
    assert params['cameras'] == list(model_info('g1_reach').cameras)
    assert argv_params(specs[4].argv)[1]['robot'] == 'unitree_g1'
    with pytest.raises(VidplanError, match='is for robot'):
        sim_graph('g1', 'reach', model='franka_reach')
    with pytest.raises(VidplanError, match='no model set'):
        sim_graph('franka', 'stack')
    with pytest.raises(VidplanError, match='at least 1'):
        sim_graph('franka', 'reach', episodes=0)


def test_a_g1_graph_runs_on_cyclone_where_rclpy_lacks_unitree_hg(monkeypatch, capsys):
    monkeypatch.delenv('VIDPLAN_TRANSPORT', raising=False)
    # rclpy (the `ros` extra) imports here, unitree_ros2's unitree_hg does not: the G1's
    # LowCmd / LowState only exist on Cyclone DDS, so `auto` would start nodes that die
    rclpy_only = (importlib.util.find_spec('rclpy') is not None
                  and importlib.util.find_spec('unitree_hg') is None)
    want = {'VIDPLAN_TRANSPORT': 'dds'} if rclpy_only else {}
    for specs in (sim_graph('g1', 'reach', episodes=1), nodes_graph('g1_reach')):
        assert all({k: s.env[k] for k in s.env if k == 'VIDPLAN_TRANSPORT'} == want
                   for s in specs)
    # a Franka graph keeps `auto`, and so does a G1 graph whose transport the user chose
    assert not any('VIDPLAN_TRANSPORT' in s.env for s in sim_graph('franka', 'reach'))
    assert not any('VIDPLAN_TRANSPORT' in s.env
                   for s in nodes_graph('g1_reach', interface='joint_trajectory'))
    assert main(['sim', '--robot', 'g1', '--task', 'reach', '--dry-run']) == 0
    assert ('runs on Cyclone DDS' in capsys.readouterr().err) == rclpy_only
    monkeypatch.setenv('VIDPLAN_TRANSPORT', 'rclpy')
    assert not any('VIDPLAN_TRANSPORT' in s.env for s in sim_graph('g1', 'reach'))


def test_params_survive_the_command_line():
    values = {'model': 'franka_push', 'use_sim_time': True, 'cameras': ['front', 'wrist'],
              'interface': '', 'seed': 3, 'scale': 0.5, 'word': 'true', 'path': '/a b/c',
              'number_text': '12'}
    entry = NodeEntry('n', 'vidplan_executor', ('executor.yaml',), values)
    assert argv_params(ros_args(entry))[1] == values
    assert param_value(False) == 'false' and param_value(['a']) == '["a"]'
    with pytest.raises(VidplanError, match='does not exist'):
        ros_args(NodeEntry('n', 'vidplan_executor', ('missing.yaml',)))


def test_process_argv_uses_the_console_script_or_the_module():
    entry = pipeline_nodes('franka_reach')[0]
    argv = process_argv(entry, python='/nowhere/bin/python3')
    assert argv[:2] == ('/nowhere/bin/python3', '-c')
    assert 'from vidplan_ros.nodes.perception_node import main' in argv[2]
    executor = pipeline_nodes('franka_reach')[3]
    script = Path(sys.executable).parent / 'vidplan_executor'
    if script.is_file():
        assert process_argv(executor)[0] == str(script)


def test_cli_dry_run_lists_the_processes(capsys):
    from vidplan_ros.cli import main as cli_main
    assert cli_main(['launch', 'sim', '--robot', 'franka', '--task', 'push', '--dry-run',
                     '--out', '/tmp/vidplan-dry']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(']')[0][1:] for line in lines] == [
        'sim', 'perception', 'planner', 'grounding', 'executor', 'monitor']
    # --inference-backend (default auto) is the backend parameter of the three model nodes
    assert [' backend:=auto' in line for line in lines] == [False, True, True, True, False,
                                                           False]
    # the sim renders at the model set's resolution (franka_push: 64 px), as its data was
    assert 'image_width:=64' in lines[0] and 'image_height:=64' in lines[0]
    assert main(['nodes', '--model', 'g1_reach', '--interface', 'unitree_lowcmd',
                 '--inference-backend', 'torch', '--dry-run']) == 0
    out = capsys.readouterr().out
    assert 'interface:=unitree_lowcmd' in out and 'robot:=unitree_g1' in out
    assert out.count(' backend:=torch') == 3
    from vidplan_ros.bringup.vidplan_launch import INFERENCE_BACKENDS
    from vidplan_ros.runtime.backends import BACKENDS
    assert INFERENCE_BACKENDS == BACKENDS


# --- the start gate (real DDS, in-process writer) ---------------------------------------------

def test_gate_starts_the_command_only_once_the_topic_has_a_writer():
    from vidplan_ros.transport import create_node
    proc = subprocess.Popen(
        [sys.executable, '-m', 'vidplan_ros.bringup.gate', '--label', 'the echo', '--timeout',
         '60', '--wait', 'sensor_msgs/msg/Image:/vidplan/gate_test', '--', sys.executable,
         '-c', 'print("command ran", flush=True)'],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    node = create_node('gate_test_writer')
    try:
        assert proc.stdout.readline().startswith('waiting for publishers on /vidplan/gate_test')
        time.sleep(1.0)
        assert proc.poll() is None                      # no writer yet: still waiting
        writer = node.create_publisher('sensor_msgs/msg/Image', '/vidplan/gate_test')
        out, _ = proc.communicate(timeout=60)
        del writer
    finally:
        node.shutdown()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert 'starting the echo' in out and 'command ran' in out


def test_gate_gives_up_naming_the_missing_topic():
    proc = subprocess.run(
        [sys.executable, '-m', 'vidplan_ros.bringup.gate', '--timeout', '0.5', '--wait',
         'sensor_msgs/msg/Image:/vidplan/nobody', '--', sys.executable, '-c', 'print("no")'],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert 'no publisher on /vidplan/nobody' in proc.stdout and 'no\n' not in proc.stdout


@pytest.mark.parametrize('backend', ['dds', 'rclpy'])
def test_gate_counts_writers_through_the_transport_on_both_backends(backend):
    """The gate asks the transport (`Node.count_publishers`), not the rclpy node inside it."""
    import importlib.util

    from vidplan_ros.bringup.gate import wait_for_writers
    from vidplan_ros.transport import create_node
    if backend == 'rclpy' and importlib.util.find_spec('rclpy') is None:
        pytest.skip('rclpy is not installed (pip install -e .[ros])')
    node = create_node(f'gate_count_{backend}', [], backend=backend)
    try:
        writer = node.create_publisher('std_msgs/msg/Bool', f'/vidplan/gate_{backend}')
        assert wait_for_writers([('std_msgs/msg/Bool', f'/vidplan/gate_{backend}')], 30.0,
                                ['--backend', backend]) == []
        assert wait_for_writers([('std_msgs/msg/Bool', '/vidplan/gate_nobody')], 0.5,
                                ['--backend', backend]) == ['/vidplan/gate_nobody']
        del writer
    finally:
        node.shutdown()


# --- the monitor's recorder -------------------------------------------------------------------

# the cameras a franka sim run records (the model set's, in its view order: the video stacks
# them top to bottom); the colours are per position
CAMS = model_info('franka_reach').cameras
COLOURS = dict(zip(CAMS, [(200, 40, 40), (40, 40, 200)]))


def camera_image(cam: str, k: int) -> np.ndarray:
    img = np.zeros((24, 32, 3), np.uint8)        # not square: letterboxed into the view
    img[:] = COLOURS[cam]
    img[:, : (k % 32)] //= 2
    return img


def status(done: int, ok: int, success: bool, seed: int, sim_s: float) -> dict:
    return {'task': 'franka/reach', 'episode': str(done), 'seed': str(seed),
            'success': str(success), 'episodes_done': str(done),
            'episodes_succeeded': str(ok), 'sim_time_s': str(sim_s)}


def feed_run(rec: RunRecorder, stamps: int, preview_from: int | None) -> None:
    """`stamps` observations 0.1 s apart (sim ns), each through every stage with known
    latencies: perception 50 ms, planner 200 ms, grounding 300 ms, preview 100 ms."""
    preview = np.zeros((16, 64, 3), np.uint8)          # 2 views x 4 steps of 8x16
    preview[:, :, 1] = 180
    t0 = 1000.0
    for k in range(stamps):
        stamp = (k + 1) * 100_000_000
        t = t0 + 0.1 * k
        for cam in CAMS:
            rec.on_camera(cam, stamp, camera_image(cam, k), recv_s=t + (0.001 if cam ==
                                                                        CAMS[1] else 0.0))
        rec.on_stage('latent', stamp, t + 0.05)
        rec.on_stage('video_plan', stamp, t + 0.25)
        if preview_from is not None and k >= preview_from:
            rec.on_preview(stamp, preview, recv_s=t + 0.35)
        rec.on_stage('grounded_plan', stamp, t + 0.55)
        if k == 9:
            rec.on_sim_status(status(0, 0, True, 0, 1.0), recv_s=t)  # success now, still on
        if k == 12:
            rec.on_sim_status(status(1, 1, False, 0, 1.3), recv_s=t)
        if k == 25:
            rec.on_sim_status(status(2, 1, False, 1, 2.6), recv_s=t)
    rec.on_node_status('vidplan_planner: planner', {'imagine_ms_p50': '150.0',
                                                    'preview_ms_p50': 'nan'})
    rec.on_node_status('vidplan_executor: executor', {'mode': 'track'})


def read_video(path: Path) -> list[np.ndarray]:
    import imageio.v2 as imageio
    with imageio.get_reader(str(path)) as reader:
        return [frame for frame in reader]


def test_recorder_writes_a_real_mp4_and_summary(tmp_path):
    cfg = MonitorConfig(out_dir=str(tmp_path / 'run'), cameras=CAMS, fps=10.0, view_px=32)
    rec = RunRecorder(cfg)
    feed_run(rec, stamps=30, preview_from=3)
    summary = rec.close()
    frames = read_video(tmp_path / 'run' / 'run.mp4')
    assert len(frames) == 30 == summary['frames']           # one frame per observation stamp
    height, width = 2 * 32, 32 + 256                         # views | preview box (aspect 4)
    assert frames[0].shape == (height + 16, width, 3)
    late = frames[20].astype(int)
    assert np.abs(late[10:20, 20:30] - COLOURS[CAMS[0]]).max() < 40  # first view, top left
    assert np.abs(late[42:54, 20:30] - COLOURS[CAMS[1]]).max() < 40  # second view below
    assert np.abs(late[20:40, 100:200] - (0, 180, 0)).max() < 40       # the plan preview
    assert late[height + 8, 100, 1] < 120                                # grey bar: running
    assert np.abs(frames[10].astype(int)[height + 8, 100] - (40, 170, 60)).max() < 40  # success
    assert np.abs(frames[1].astype(int)[20:40, 100:200]).max() < 30     # no preview yet: black

    on_disk = json.loads((tmp_path / 'run' / 'summary.json').read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert [(e['episode'], e['seed'], e['success']) for e in summary['episodes']] == [
        (0, 0, True), (1, 1, False)]
    assert summary['success_rate'] == 0.5 and summary['episodes_done'] == 2
    lat = summary['latency_ms']
    for stage, ms in (('perception', 50), ('planner', 200), ('grounding', 300),
                      ('preview', 100), ('total', 550)):
        assert lat[stage]['count'] == (27 if stage == 'preview' else 30), stage
        assert lat[stage]['p50'] == pytest.approx(ms, abs=0.5), stage
    assert summary['node_reported_latency_ms']['vidplan_planner: planner/imagine_ms_p50'][
        'mean'] == pytest.approx(150.0)
    assert 'vidplan_planner: planner/preview_ms_p50' not in summary['node_reported_latency_ms']
    assert summary['executor_status_modes'] == {'track': 1}

    text = format_report({**summary, 'run': {'model': 'franka_reach', 'task': 'franka/reach',
                                             'seed': 0, 'episodes': 3}})
    assert 'episode 0 seed 0: SUCCESS' in text and 'episode 1 seed 1: failure' in text
    assert 'success: 1/2 episodes (3 requested)' in text
    assert 'grounding' in text and 'run.mp4 (30 frames at 10 fps)' in text


def test_recorder_without_any_preview_still_writes_the_views(tmp_path):
    cfg = MonitorConfig(out_dir=str(tmp_path), cameras=CAMS, view_px=16, max_buffer_frames=8)
    rec = RunRecorder(cfg)
    feed_run(rec, stamps=12, preview_from=None)     # the buffer fills at 8: layout fixed then
    summary = rec.close()
    frames = read_video(tmp_path / 'run.mp4')
    assert len(frames) == 12 and frames[0].shape == (2 * 16 + 16, 16 + 128, 3)
    assert summary['latency_ms']['preview'] == {'count': 0}


def test_recorder_missed_statuses_and_empty_run(tmp_path):
    rec = RunRecorder(MonitorConfig(out_dir=str(tmp_path), cameras=('front',)))
    rec.on_sim_status(status(3, 1, False, 7, 9.0))     # three episodes ended unseen
    assert [e['success'] for e in rec.episodes] == [None, None, None]
    assert rec.episodes[-1]['seed'] == 7 and rec.episodes[0]['seed'] is None
    summary = rec.close()
    assert summary['video'] is None and summary['frames'] == 0
    assert not (tmp_path / 'run.mp4').exists() and (tmp_path / 'summary.json').is_file()
    assert 'no plans seen' in format_report(summary)


def test_fit_keeps_the_aspect_on_a_black_canvas():
    out = fit(np.full((10, 20, 3), 255, np.uint8), 40, 40)
    assert out.shape == (40, 40, 3)
    assert out[:10].max() == 0 and out[30:].max() == 0 and out[10:30].min() == 255
    with pytest.raises(VidplanError):
        MonitorConfig(view_px=20)
