"""Bags: written through rosbags (mcap, rosbag2 v8), read back by rosbags and by us."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import Reader

from vidplan_ros.data.bags import (BAG_VERSION, SIDECAR, BagError, BagReader, BagWriter,
                                   EpisodeMeta, bag_typestore, recover_bag, ros_type_of)
from vidplan_ros.data.recorder import parse_topic, record_topics, topic_type
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport import create_node
from vidplan_ros.transport.dds_msgs import dds_type

REPO = Path(__file__).resolve().parents[2]
NAMES = ['j1', 'j2', 'j3']


def sample_messages(k):
    """One message of each kind an episode holds, at step k (dds_msgs objects)."""
    t = 1_000_000_000 + k * 50_000_000
    rng = np.random.default_rng(k)
    lowcmd = dds_type('unitree_hg/msg/LowCmd')(mode_machine=5, crc=k)
    lowcmd.motor_cmd[12].q = 0.25 * k
    diag = dds_type('diagnostic_msgs/msg/DiagnosticArray')(
        header=cv.header(dds_type, t),
        status=[dds_type('diagnostic_msgs/msg/DiagnosticStatus')(
            level=0, name='planner', message='ok', hardware_id='',
            values=[dds_type('diagnostic_msgs/msg/KeyValue')(key='latency_ms', value='3.5')])])
    return t, {
        '/cameras/front/image_raw': cv.image_msg(
            dds_type, t, 'front', rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)),
        '/cameras/front/camera_info': cv.camera_info_msg(
            dds_type, t, 'front', 320, 240, np.array([[300, 0, 160], [0, 300, 120], [0, 0, 1.]])),
        '/joint_states': cv.joint_state_msg(dds_type, t, NAMES, rng.normal(size=3),
                                            rng.normal(size=3)),
        '/arm/joint_trajectory': cv.joint_trajectory_msg(
            dds_type, t, NAMES, [0.1, 0.2], rng.normal(size=(2, 3))),
        '/vidplan/gripper_command': dds_type('std_msgs/msg/Float64MultiArray')(data=[0.04]),
        '/clock': cv.clock_msg(dds_type, t),
        '/lowcmd': lowcmd,
        '/diagnostics': diag,
    }


TYPES = {topic: ros_type_of(msg) for topic, msg in sample_messages(0)[1].items()}
N_STEPS = 12


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp('bags') / 'episode_0'
    meta = EpisodeMeta(robot='franka_fr3', task='franka/push', seed=7, policy='expert:push',
                       sim_config={'image_size': [24, 32], 'cameras': ['front']})
    with BagWriter(path, metadata=meta.to_metadata()) as writer:
        for k in range(N_STEPS):
            t, msgs = sample_messages(k)
            for topic, msg in msgs.items():
                writer.write(topic, t, msg)
        writer.update_metadata(success=True, steps=N_STEPS)
    return path


def test_layout_is_a_humble_readable_mcap_bag(bag):
    assert sorted(p.name for p in bag.iterdir()) == sorted(
        ['metadata.yaml', f'{bag.name}.mcap', SIDECAR])
    meta = (bag / 'metadata.yaml').read_text()
    assert f'version: {BAG_VERSION}' in meta and 'storage_identifier: mcap' in meta
    assert BAG_VERSION == 8  # v9 writes QoS as a YAML list, which Humble cannot parse
    assert 'offered_qos_profiles: "' in meta or "offered_qos_profiles: '" in meta


def test_rosbags_reads_every_topic_with_type_and_count(bag):
    store = bag_typestore()
    with Reader(bag) as reader:
        assert {t: i.msgtype for t, i in reader.topics.items()} == TYPES
        assert {t: i.msgcount for t, i in reader.topics.items()} == {t: N_STEPS for t in TYPES}
        seen = {}
        for conn, t_ns, raw in reader.messages():
            seen.setdefault(conn.topic, []).append((t_ns, store.deserialize_cdr(raw,
                                                                                conn.msgtype)))
    js = seen['/joint_states'][3][1]
    assert list(js.name) == NAMES and js.header.stamp.sec == 1
    assert seen['/lowcmd'][4][1].motor_cmd[12].q == pytest.approx(1.0)
    img = seen['/cameras/front/image_raw'][0][1]
    assert (img.encoding, img.width, img.height) == ('rgb8', 320, 240)
    assert [t for t, _ in seen['/clock']] == [sample_messages(k)[0] for k in range(N_STEPS)]


def test_our_reader_round_trips_messages_and_metadata(bag):
    with BagReader(bag) as reader:
        assert reader.topics == {t: (TYPES[t], N_STEPS) for t in TYPES}
        assert reader.message_count == N_STEPS * len(TYPES)
        assert reader.start_ns == sample_messages(0)[0]
        assert reader.duration_s == pytest.approx((N_STEPS - 1) * 0.05)
        got = list(reader.messages())
        assert [m.t_ns for m in got] == sorted(m.t_ns for m in got)
        by_step = {}
        for topic, ros_type, t_ns, msg in got:
            assert type(msg) is dds_type(ros_type)
            by_step[(topic, t_ns)] = msg
        for k in range(N_STEPS):
            t, msgs = sample_messages(k)
            for topic, msg in msgs.items():
                assert by_step[(topic, t)].serialize() == msg.serialize()
        only = list(reader.messages(['/joint_states'], start_ns=sample_messages(2)[0],
                                    stop_ns=sample_messages(5)[0]))
        assert [m.topic for m in only] == ['/joint_states'] * 3
        raw = next(reader.messages(['/clock'], raw=True))
        assert raw.message == sample_messages(0)[1]['/clock'].serialize()
        meta = reader.metadata
        episode = reader.episode
    assert meta['success'] is True and meta['complete'] is True and meta['steps'] == N_STEPS
    assert episode.robot == 'franka_fr3' and episode.task == 'franka/push'
    assert episode.seed == 7 and episode.success is True and episode.policy == 'expert:push'
    assert episode.sim_config == {'image_size': [24, 32], 'cameras': ['front']}
    sidecar = json.loads((bag / SIDECAR).read_text())
    assert sidecar['metadata'] == meta
    assert sidecar['topics']['/lowcmd'] == {'type': 'unitree_hg/msg/LowCmd', 'count': N_STEPS}
    with Reader(bag) as reader:  # custom_data as rosbag2 stores it: strings
        assert reader.storage.metadata.custom['vidplan.robot'] == '"franka_fr3"'


def test_reader_errors_name_the_problem(bag, tmp_path):
    with pytest.raises(BagError, match='no bag at .*pass a bag directory'):
        BagReader(tmp_path / 'missing').open()
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='is not a bag'):
        BagReader(tmp_path / 'empty').open()
    with BagReader(bag) as reader:
        with pytest.raises(BagError, match=r"has no topics \['/nope'\]"):
            list(reader.messages(['/nope']))
    with pytest.raises(BagError, match='not open'):
        _ = BagReader(bag).topics


def test_writer_refuses_bad_input(tmp_path, bag):
    with pytest.raises(BagError, match='exists already.*overwrite'):
        BagWriter(bag).open()
    (tmp_path / 'notes').mkdir()
    (tmp_path / 'notes' / 'a.txt').write_text('x')
    with pytest.raises(BagError, match='is not a bag; refusing'):
        BagWriter(tmp_path / 'notes', overwrite=True).open()
    with pytest.raises(BagError, match='JSON values'):
        BagWriter(tmp_path / 'b0', metadata={'when': object()})
    with BagWriter(tmp_path / 'b1') as writer:
        with pytest.raises(BagError, match='fully qualified'):
            writer.write('joint_states', 0, sample_messages(0)[1]['/joint_states'])
        with pytest.raises(BagError, match='not a ROS message'):
            writer.write('/x', 0, {'data': 1})
        with pytest.raises(BagError, match='negative'):
            writer.write('/clock', -1, sample_messages(0)[1]['/clock'])
        writer.write('/x', 0, dds_type('std_msgs/msg/Bool')(data=True))
        with pytest.raises(BagError, match='already recorded as std_msgs/msg/Bool'):
            writer.write('/x', 1, sample_messages(0)[1]['/clock'])
    with pytest.raises(BagError, match='closed'):
        writer.write('/x', 2, dds_type('std_msgs/msg/Bool')(data=True))
    with BagWriter(tmp_path / 'b1', overwrite=True) as writer:  # replaces a bag
        writer.write('/y', 0, dds_type('std_msgs/msg/Bool')(data=True))
    with BagReader(tmp_path / 'b1') as reader:
        assert list(reader.topics) == ['/y']


def test_bag_is_closed_properly_when_the_body_raises(tmp_path):
    path = tmp_path / 'interrupted'
    with pytest.raises(KeyboardInterrupt):
        with BagWriter(path, metadata={'robot': 'franka_fr3', 'task': 'reach'}) as writer:
            for k in range(5):
                t, msgs = sample_messages(k)
                writer.write('/joint_states', t, msgs['/joint_states'])
            raise KeyboardInterrupt
    with BagReader(path) as reader:
        assert reader.topics['/joint_states'].count == 5
        assert reader.metadata['complete'] is False
        assert reader.metadata['interrupted_by'] == 'KeyboardInterrupt'


def test_truncated_bag_gives_a_clear_error_and_can_be_recovered(bag, tmp_path):
    import shutil
    broken = tmp_path / 'broken'
    shutil.copytree(bag, broken)
    mcap = broken / f'{bag.name}.mcap'
    mcap.rename(broken / 'broken.mcap')  # metadata names the file; keep the name it expects
    meta = (broken / 'metadata.yaml').read_text().replace(f'{bag.name}.mcap', 'broken.mcap')
    (broken / 'metadata.yaml').write_text(meta)
    mcap = broken / 'broken.mcap'
    size = mcap.stat().st_size
    with open(mcap, 'r+b') as fh:
        fh.truncate(size * 2 // 3)
    with pytest.raises(BagError) as err:
        BagReader(broken).open()
    text = str(err.value)
    assert str(mcap) in text and 'truncated or corrupt' in text
    assert f'python -m vidplan_ros.data.bags recover {broken}' in text
    # a killed recording has no metadata.yaml either
    (broken / 'metadata.yaml').unlink()
    with pytest.raises(BagError, match='metadata.yaml is missing.*recover'):
        BagReader(broken).open()
    counts = recover_bag(broken, tmp_path / 'recovered')  # the complete 1 MiB chunks
    with BagReader(tmp_path / 'recovered') as reader:
        assert {t: i.count for t, i in reader.topics.items()} == counts
        assert 0 < sum(counts.values()) < N_STEPS * len(TYPES)
        assert reader.metadata['recovered_from'] == str(mcap)
        assert reader.metadata['complete'] is False
        assert all(type(m.message) is dds_type(m.ros_type) for m in reader.messages())
    with open(mcap, 'r+b') as fh:
        fh.truncate(1000)  # not even one chunk
    with pytest.raises(BagError, match='no complete message chunk'):
        recover_bag(broken / 'broken.mcap', tmp_path / 'nothing')
    assert not (tmp_path / 'nothing').exists()


def test_zstd_chunks_read_back_and_recover(tmp_path):
    path = tmp_path / 'zstd'
    with BagWriter(path, compression='zstd') as writer:
        for k in range(N_STEPS):
            t, msgs = sample_messages(k)
            for topic in ('/cameras/front/image_raw', '/joint_states'):
                writer.write(topic, t, msgs[topic])
    with Reader(path) as reader:  # rosbags decompresses the chunks
        assert {t: i.msgcount for t, i in reader.topics.items()} == {
            '/cameras/front/image_raw': N_STEPS, '/joint_states': N_STEPS}
        chunks = {c.compression for c in reader.storage.storages[0].chunks}
    assert chunks == {'zstd'}
    with BagReader(path) as reader:
        img = [m.message for m in reader.messages(['/cameras/front/image_raw'])]
    assert img[3].serialize() == sample_messages(3)[1]['/cameras/front/image_raw'].serialize()
    (path / 'metadata.yaml').unlink()  # as if killed: the complete chunks come back
    counts = recover_bag(path, tmp_path / 'zstd_recovered')
    assert counts == {'/cameras/front/image_raw': N_STEPS, '/joint_states': N_STEPS}
    with pytest.raises(BagError, match="compression 'lz4'"):
        BagWriter(tmp_path / 'x', compression='lz4')


def test_topic_types_and_specs():
    assert topic_type('/cameras/wrist/image_raw') == 'sensor_msgs/msg/Image'
    assert topic_type('/cameras/wrist/camera_info') == 'sensor_msgs/msg/CameraInfo'
    assert topic_type('/fr3_arm_controller/joint_trajectory') == \
        'trajectory_msgs/msg/JointTrajectory'
    assert topic_type('/arm_sdk') == 'unitree_hg/msg/LowCmd'
    assert topic_type('/mystery') is None
    assert parse_topic('/talk:std_msgs/msg/Bool') == ('/talk', 'std_msgs/msg/Bool')
    with pytest.raises(BagError, match='type is not known; give it as /mystery:pkg/msg/Type'):
        parse_topic('/mystery')
    with pytest.raises(BagError, match="full name, e.g. '/joint_states'"):
        parse_topic('joint_states')


PUBLISHER = textwrap.dedent(f"""
    import sys
    sys.path.insert(0, {str(REPO)!r})
    import numpy as np
    from vidplan_ros.transport import create_node, QOS_SENSOR_DATA
    from vidplan_ros.transport import convert as cv
    node = create_node('fake_robot')
    js = node.create_publisher('sensor_msgs/msg/JointState', '/joint_states')
    img = node.create_publisher('sensor_msgs/msg/Image', '/cameras/front/image_raw',
                                QOS_SENSOR_DATA)
    flag = node.create_publisher('std_msgs/msg/Bool', '/flag')
    n = [0]
    def tick():
        n[0] += 1
        t = node.now_ns()
        js.publish(cv.joint_state_msg(node.msg_type, t, ['a', 'b'], [n[0], 0.5]))
        pix = np.full((48, 64, 3), n[0] % 255, dtype=np.uint8)
        img.publish(cv.image_msg(node.msg_type, t, 'front', pix))
        flag.publish(node.msg_type('std_msgs/msg/Bool')(data=bool(n[0] % 2)))
    node.create_timer(0.02, tick)
    print('PUBLISHING', flush=True)
    node.spin(timeout_s=float(sys.argv[1]))
""")
RECORDED = ['/joint_states', '/cameras/front/image_raw', '/flag:std_msgs/msg/Bool']


def check_recorded(path):
    with Reader(path) as reader:  # rosbags opens it
        types = {t: i.msgtype for t, i in reader.topics.items()}
        counts = {t: i.msgcount for t, i in reader.topics.items()}
        store = bag_typestore()
        last = None
        for conn, _, raw in reader.messages([c for c in reader.connections
                                             if c.topic == '/joint_states']):
            last = store.deserialize_cdr(raw, conn.msgtype)
    assert types == {'/joint_states': 'sensor_msgs/msg/JointState', '/flag': 'std_msgs/msg/Bool',
                     '/cameras/front/image_raw': 'sensor_msgs/msg/Image'}
    assert list(last.name) == ['a', 'b']
    return counts


def test_record_topics_rejects_unknown_types_and_other_backends(tmp_path):
    node = create_node('recorder_checks')
    with pytest.raises(BagError, match='cannot record geometry_msgs/msg/Twist without ROS'):
        record_topics(node, ['/cmd_vel:geometry_msgs/msg/Twist'], tmp_path / 'x')
    with pytest.raises(BagError, match='named twice'):
        record_topics(node, ['/clock', '/clock'], tmp_path / 'x')
    node.shutdown()

    class RclpyLike:
        backend = 'rclpy'

    with pytest.raises(BagError, match='ros2 bag record'):
        record_topics(RclpyLike(), ['/clock'], tmp_path / 'x')
    assert not (tmp_path / 'x').exists()


def test_record_topics_from_another_process(tmp_path):
    proc = subprocess.Popen([sys.executable, '-c', PUBLISHER, '20'], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'PUBLISHING', proc.stderr.read()
        node = create_node('recorder')
        result = record_topics(node, RECORDED, tmp_path / 'rec', duration_s=2.5,
                               metadata={'robot': 'franka_fr3', 'task': 'teleop'})
        node.shutdown()
    finally:
        proc.kill()
        proc.wait()
    assert result.stopped_by == 'duration'
    counts = check_recorded(tmp_path / 'rec')
    assert counts == dict(result.counts)
    assert all(n >= 20 for n in counts.values()), counts  # 50 Hz for ~2 s after discovery
    with BagReader(tmp_path / 'rec') as reader:
        assert reader.metadata['source'] == 'robot' and reader.metadata['task'] == 'teleop'
        assert reader.metadata['complete'] is True


def test_vidplan_record_stops_cleanly_on_ctrl_c(tmp_path):
    pub = subprocess.Popen([sys.executable, '-c', PUBLISHER, '30'], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    out = tmp_path / 'ctrl_c'
    rec = subprocess.Popen([sys.executable, '-m', 'vidplan_ros.data.recorder', *RECORDED,
                            '-o', str(out), '--meta', 'robot=franka_fr3', 'seed=3'],
                           cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, 'PYTHONPATH': str(REPO)})
    try:
        assert pub.stdout.readline().strip() == 'PUBLISHING', pub.stderr.read()
        assert rec.stdout.readline().startswith('recording into'), rec.stderr.read()
        time.sleep(2.0)
        rec.send_signal(signal.SIGINT)
        stdout, stderr = rec.communicate(timeout=20)
    finally:
        for p in (pub, rec):
            p.kill()
            p.wait()
    assert rec.returncode == 0, stderr
    assert '(ctrl-c)' in stdout, stdout
    counts = check_recorded(out)
    assert all(n >= 10 for n in counts.values()), counts
    with BagReader(out) as reader:
        assert reader.metadata['stopped_by'] == 'ctrl-c'
        assert reader.metadata['seed'] == 3 and reader.metadata['complete'] is True
