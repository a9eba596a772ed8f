"""Collecting scripted-expert episodes in the embedded sim into bags (needs the sim modules)."""

import json

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.data.bags import BagReader, bag_typestore

for _name in ('vidplan_ros.sim.env', 'vidplan_ros.sim.experts', 'vidplan_ros.sim.rollout'):
    pytest.importorskip(_name, reason=f'{_name} (the sim) is not there yet')

from vidplan_ros.data.collect import (CollectConfig, collect, episode_dir,  # noqa: E402
                                      main, resolve_robot_task)
from vidplan_ros.data.dataset import DatasetConfig, build_dataset  # noqa: E402
from vidplan_ros.transport import convert as cv  # noqa: E402

# the Franka scene's cameras (sim/scene.py): the fixed workspace views and the wrist
FRANKA_CAMERAS = ('top', 'front', 'side', 'wrist')
FRANKA_TOPICS = {
    '/clock': 'rosgraph_msgs/msg/Clock',
    '/joint_states': 'sensor_msgs/msg/JointState',
    '/fr3_arm_controller/joint_trajectory': 'trajectory_msgs/msg/JointTrajectory',
    '/franka_gripper/joint_command': 'sensor_msgs/msg/JointState',
    '/vidplan/task_state': 'std_msgs/msg/Float64MultiArray',
    **{f'/cameras/{c}/image_raw': 'sensor_msgs/msg/Image' for c in FRANKA_CAMERAS},
    **{f'/cameras/{c}/camera_info': 'sensor_msgs/msg/CameraInfo'
       for c in FRANKA_CAMERAS},
}
OBSERVATIONS = ('/clock', '/joint_states', '/cameras/front/image_raw')


def test_short_names_resolve():
    assert resolve_robot_task('franka', 'push') == ('franka_fr3', 'franka/push')
    assert resolve_robot_task('g1', 'reach') == ('unitree_g1', 'g1/reach')
    assert resolve_robot_task(None, 'franka/reach') == ('franka_fr3', 'franka/reach')
    assert resolve_robot_task('franka_fr3', 'franka/push') == ('franka_fr3', 'franka/push')
    with pytest.raises(VidplanError, match="no sim task 'fly'.*franka/push"):
        resolve_robot_task('franka', 'fly')
    with pytest.raises(VidplanError, match='is for robot franka_fr3, not unitree_g1'):
        resolve_robot_task('g1', 'franka/push')
    with pytest.raises(VidplanError, match='has no sim scene'):
        resolve_robot_task('spot', 'push')
    with pytest.raises(VidplanError, match='or give --robot'):
        resolve_robot_task(None, 'push')
    assert episode_dir('data/x', 'franka/push', 3).as_posix() == 'data/x/push_3'
    with pytest.raises(VidplanError, match='episodes'):
        CollectConfig(robot='franka_fr3', task='franka/reach', episodes=0)


def test_collect_franka_reach_writes_a_bag_per_episode(tmp_path, capsys):
    out = tmp_path / 'franka_reach'
    rc = main(['--robot', 'franka', '--task', 'reach', '--episodes', '2', '--out', str(out),
               '--seed0', '5', '--image-size', '48', '32', '--max-time-s', '4',
               '--no-progress'])
    assert rc == 0
    printed = capsys.readouterr().out
    assert 'franka/reach (franka_fr3): success' in printed and 'per episode' in printed
    summary = json.loads((out / 'collect.json').read_text())
    assert [b['bag'] for b in summary['bags']] == ['reach_5', 'reach_6']
    assert summary['episodes'] == 2 and summary['task'] == 'franka/reach'
    store = bag_typestore()
    for seed in (5, 6):
        path = out / f'reach_{seed}'
        with Reader(path) as reader:  # what ros2 bag / rosbags see
            assert {t: i.msgtype for t, i in reader.topics.items()} == FRANKA_TOPICS
            counts = {t: i.msgcount for t, i in reader.topics.items()}
            conn = next(c for c in reader.connections if c.topic == '/cameras/wrist/image_raw')
            _, t_ns, raw = next(reader.messages([conn]))
            img = store.deserialize_cdr(raw, conn.msgtype)
            assert (img.width, img.height, img.encoding) == (48, 32, 'rgb8')
        steps = counts['/fr3_arm_controller/joint_trajectory']
        assert steps >= 10
        for topic in FRANKA_TOPICS:  # one more observation (the end state) than commands
            want = steps + 1 if topic.startswith(('/cameras', '/clock', '/joint_states',
                                                  '/vidplan/task_state')) \
                else steps
            assert counts[topic] == want, topic
        with BagReader(path) as bag:
            meta, episode = bag.metadata, bag.episode
            msgs = {}
            for m in bag.messages():
                msgs.setdefault(m.topic, []).append(m)
        assert episode.robot == 'franka_fr3' and episode.task == 'franka/reach'
        assert episode.seed == seed and episode.policy == 'expert:franka/reach'
        assert isinstance(episode.success, bool) and meta['complete'] is True
        assert episode.sim_config['image_width'] == 48
        assert meta['command_topic'] == '/fr3_arm_controller/joint_trajectory'
        assert len(meta['task_state_at_reset']['target_pos_m']) == 3
        names, target = cv.named_values_arrays(msgs['/vidplan/task_state'][0].message)
        assert names == ('target_x_m', 'target_y_m', 'target_z_m')
        assert target == pytest.approx(meta['task_state_at_reset']['target_pos_m'])
        # log time = header stamp = sim time, at the plan rate from 0
        clock = [m.t_ns for m in msgs['/clock']]
        assert clock[:3] == [0, 100_000_000, 200_000_000]
        js = msgs['/joint_states'][0].message
        assert cv.time_to_ns(js.header.stamp) == 0
        q, _ = cv.joint_state_arrays(js, ['fr3_joint1', 'fr3_joint4', 'fr3_finger_joint1'])
        assert q[1] == pytest.approx(-2.356194490192345, abs=1e-6)
        times, pos, _ = cv.joint_trajectory_arrays(
            msgs['/fr3_arm_controller/joint_trajectory'][3].message,
            [f'fr3_joint{i}' for i in range(1, 8)])
        assert pos.shape == (len(times), 7) and np.all(np.diff(times) > 0)
        info = msgs['/cameras/front/camera_info'][0].message
        assert (info.width, info.height) == (48, 32) and info.k[8] == 1.0
        assert cv.image_array(msgs['/cameras/front/image_raw'][-1].message).shape == (32, 48, 3)
    # a second run keeps complete bags (resume); overwrite records again
    again = collect(CollectConfig(robot='franka_fr3', task='franka/reach', episodes=2, seed0=5,
                                  image_width=48, image_height=32, max_time_s=4.0), out,
                    progress=False)
    assert again.recorded == 0 and len(again.bags) == 2


def test_collect_g1_in_two_processes_records_lowstate_and_commanded_chunks(tmp_path):
    cfg = CollectConfig(robot='g1', task='reach', episodes=2, seed0=1, image_width=32,
                        image_height=32, cameras=('front',), max_time_s=2.0, workers=2)
    result = collect(cfg, tmp_path / 'g1', progress=False)
    assert result.recorded == 2
    assert [p.name for p in result.bags] == ['reach_1', 'reach_2']
    assert [e['seed'] for e in result.episodes] == [1, 2]
    with pytest.raises(VidplanError, match='recorded with sim config.*--overwrite'):
        collect(CollectConfig(robot='g1', task='reach', episodes=1, seed0=1, image_width=64,
                              image_height=32, cameras=('front',)), tmp_path / 'g1')
    with BagReader(result.bags[0]) as bag:
        topics = bag.topics
        state = next(bag.messages(['/lowstate'])).message
        chunk = next(bag.messages(['/vidplan/commanded_trajectory'])).message
        meta = bag.metadata
    assert topics['/lowstate'].ros_type == 'unitree_hg/msg/LowState'
    assert topics['/vidplan/commanded_trajectory'].ros_type == \
        'trajectory_msgs/msg/JointTrajectory'
    assert '/cameras/head/image_raw' not in topics and '/franka_gripper/joint_command' \
        not in topics
    assert meta['robot'] == 'unitree_g1' and meta['command_topic'] == \
        '/vidplan/commanded_trajectory'
    assert len(chunk.joint_names) == 17 and len(state.motor_state) == 35



def test_collect_push_with_a_shove_records_it_and_resumes_only_with_the_same_shoves(
        tmp_path, capsys):
    out = tmp_path / 'push'
    args = ['--task', 'franka/push', '--episodes', '1', '--seed0', '40000', '--out', str(out),
            '--image-size', '32', '--cameras', 'top', '--max-time-s', '8',
            '--start-noise-rad', '0.2', '--object-push-prob', '1', '--no-progress']
    assert main(args + ['--object-push-m', '0.05']) == 0
    with BagReader(out / 'push_40000') as bag:
        meta = bag.metadata
    assert meta['noise']['object_push_prob'] == 1.0 and meta['noise']['object_push_m'] == 0.05
    assert meta['object_pushes'] == 1
    # the task state follows the cube (shoved once) and keeps the goal; the dataset reads it
    ds = build_dataset(DatasetConfig(data_dir=str(out), cameras=('top',), image_size=32,
                                     cache_dir=str(tmp_path / 'cache')))
    assert ds.task_state_names[:2] == ('cube_x_m', 'cube_y_m') and len(ds.task_state) == \
        len(ds.q)
    reset = meta['task_state_at_reset']
    assert ds.task_state[0, :2] == pytest.approx(reset['cube_pos_m'][:2], abs=1e-5)
    assert ds.task_state[:, 4:] == pytest.approx(np.tile(reset['goal_pos_m'][:2],
                                                         (len(ds.q), 1)), abs=1e-5)
    moved = np.linalg.norm(ds.task_state[:, :2] - ds.task_state[0, :2], axis=1)
    assert moved.max() > 0.02
    assert np.allclose(ds.task_state[:, 2] ** 2 + ds.task_state[:, 3] ** 2, 1, atol=1e-4)
    assert main(args + ['--object-push-m', '0.05']) == 0      # resumes: nothing recorded again
    assert main(args + ['--object-push-m', '0.02']) != 0
    assert "'object_push_m': 0.02" in capsys.readouterr().err
