"""`vidplan replay`: recorded bags through the stack in shadow mode (real sim bags, real models).

One short expert franka/push episode is recorded with the collector; every other bag is made
from it with the `rosbags` writers (sqlite3 / Jazzy, compressed and re-encoded images under
other names, foreign joints, truncated and corrupt files), so the replays can be compared
exactly: the same pixels and joints must give the same plans.
"""

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from rosbags.rosbag2 import (CompressionFormat, CompressionMode, Reader, StoragePlugin,
                             Writer)
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.data.bags import UNITREE_HG_MSGS, BagReader
from vidplan_ros.transport import convert as cv
from vidplan_ros.transport.dds_msgs import dds_type

for _name in ('vidplan_ros.sim.env', 'vidplan_ros.sim.experts', 'vidplan_ros.sim.rollout'):
    pytest.importorskip(_name, reason=f'{_name} (the sim) is not there yet')

from vidplan_ros.data.replay import ReplayConfig, ReplayError, main, replay  # noqa: E402
from vidplan_ros.data.replay_topics import frame_rgb  # noqa: E402

MODEL = 'franka_push'
NAMES = load_robot_spec('franka_fr3').joint_names
CMD = '/fr3_arm_controller/joint_trajectory'
FAST = ReplayConfig(preview_every=0, overwrite=True)   # the pipeline fixture grounds quickly


@pytest.fixture(scope='module')
def recorded(tmp_path_factory) -> Path:
    """A 1 s expert franka/push episode recorded by `vidplan collect` (mcap, Humble)."""
    from vidplan_ros.data.collect import CollectConfig, collect
    out = tmp_path_factory.mktemp('replay') / 'push'
    result = collect(CollectConfig(robot='franka_fr3', task='franka/push', episodes=1,
                                   seed0=7, image_width=64, image_height=64,
                                   cameras=('top', 'front'), max_time_s=1.0), out,
                     progress=False)
    return result.bags[0]


@pytest.fixture(scope='module')
def pipeline():
    """The franka_push model set with inverse-dynamics grounding (fast on a loaded CPU)."""
    from vidplan_ros.core.baselines import GrounderConfig
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    return Pipeline(PipelineConfig(model=MODEL, threads=1,
                                   grounding=GrounderConfig(method='inverse_dynamics')))


@pytest.fixture(scope='module')
def mcap_result(recorded, pipeline, tmp_path_factory):
    out = tmp_path_factory.mktemp('out') / 'mcap_replay'
    return replay(recorded, out, ReplayConfig(overwrite=True), pipeline=pipeline,
                  progress=False, echo=lambda s: None)


def rewrite(src: Path, dst: Path, transform=None, storage=StoragePlugin.MCAP, version=8,
            store=Stores.ROS2_HUMBLE, extra_types=None, zstd=False) -> Path:
    """Copy bag `src` to `dst` with the rosbags writer of another distro / storage.

    `transform(topic, ros_type, t_ns, msg)` returns [(topic, ros_type, message or raw CDR)]
    to write instead (message objects are dds_msgs, serialised here).
    """
    typestore = get_typestore(store)
    if extra_types:
        typestore.register(extra_types)
    conns = {}
    out = Writer(dst, version=version, storage_plugin=storage)
    if zstd:   # mcap chunks of ~1 MiB, each compressed
        out.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with BagReader(src) as bag, out:
        for topic, ros_type, t_ns, data in bag.messages(raw=True):
            items = [(topic, ros_type, data)]
            if transform is not None:
                msg = dds_type(ros_type).deserialize(data) if ros_type in _DDS else data
                items = transform(topic, ros_type, t_ns, msg)
            for name, typ, payload in items:
                if (name, typ) not in conns:
                    conns[(name, typ)] = out.add_connection(name, typ, typestore=typestore)
                raw = payload if isinstance(payload, (bytes, bytearray)) else \
                    payload.serialize()
                out.write(conns[(name, typ)], t_ns, bytes(raw))
    return dst


_DDS = {'sensor_msgs/msg/Image', 'sensor_msgs/msg/JointState',
        'trajectory_msgs/msg/JointTrajectory', 'sensor_msgs/msg/CameraInfo',
        'rosgraph_msgs/msg/Clock'}


def action_errors(result) -> np.ndarray:
    """Per-joint mean abs action error vs the recorded command."""
    return np.array(result.report['score']['action_error_rad']['vs_recorded_command']
                    ['per_joint_mean_abs'])


# --- the recorder's own bags --------------------------------------------------------------------

def test_recorder_mcap_bag_replays_into_a_complete_output_bag(recorded, mcap_result):
    with BagReader(recorded) as src:
        src_topics = src.topics
    with BagReader(mcap_result.output) as out:
        topics = out.topics
        assert out.metadata['complete'] is True and out.metadata['shadow'] is True
        plans = [(t, m) for _, _, t, m in out.messages(['/vidplan/grounded_plan'])]
        stamps = [(t, m) for _, _, t, m in out.messages(['/vidplan/latent'])]
        shadow = [m for _, _, _, m in out.messages(['/vidplan/shadow/joint_command'])]
    for topic, info in src_topics.items():           # every original topic, every message
        assert topics[topic] == info, topic
    s = mcap_result.report['score']
    n = s['replans']
    assert n >= 4                                      # 1 s at the model's 0.2 s plan period
    for topic in ('/vidplan/latent', '/vidplan/latent/joint_states', '/vidplan/video_plan',
                  '/vidplan/plan_preview', '/vidplan/grounded_plan',
                  '/vidplan/grounded_plan/feasibility', '/diagnostics'):
        assert topics[topic].count == n, topic
    assert topics['/vidplan/shadow/joint_command'].count > 10 * (n - 1)   # 50 Hz
    assert list(plans[0][1].joint_names) == list(NAMES)
    for (log_ns, plan), (_, latent) in zip(plans, stamps):   # frozen time: at the observation
        assert cv.time_to_ns(plan.header.stamp) == log_ns == cv.time_to_ns(latent.header.stamp)
    assert list(shadow[0].name) == list(NAMES)
    assert s['plans']['accepted'] + sum(s['plans']['rejected'].values()) == n
    act = s['action_error_rad']
    assert act['vs_recorded_command']['count'] == n
    assert 0 < act['vs_recorded_command']['mean'] < 0.2      # rad; the expert's own states
    assert set(s['latency_ms']) >= {'encode', 'imagine', 'ground', 'preview', 'replan',
                                    'executor_step'}
    json_path, md_path = mcap_result.report_paths
    assert json_path.exists() and 'frames/s' in md_path.read_text()


def test_output_bag_is_what_ros2_bag_play_and_foxglove_open(mcap_result):
    """mcap storage, rosbag2 metadata, and every channel carries its message definition."""
    import yaml
    info = yaml.safe_load((mcap_result.output / 'metadata.yaml').read_text())
    info = info['rosbag2_bagfile_information']
    assert info['storage_identifier'] == 'mcap' and info['version'] == 8   # Humble reads 8
    with Reader(mcap_result.output) as reader:
        for conn in reader.connections:
            assert conn.msgdef.data and conn.digest.startswith('RIHS01_'), conn.topic
        store = get_typestore(Stores.ROS2_JAZZY)
        conn = next(c for c in reader.connections if c.topic == '/vidplan/plan_preview')
        _, _, raw = next(reader.messages([conn]))
        img = store.deserialize_cdr(raw, conn.msgtype)
        assert img.encoding == 'rgb8' and img.height == 2 * 64 and img.width == 8 * 64


def test_output_bag_is_written_in_log_time_order(mcap_result):
    """Originals, plans and 50 Hz shadow commands interleave in time order in the file itself
    (players that stream an mcap in file order see no message from the past)."""
    import mmap

    from vidplan_ros.data.bags import _MCAP_MAGIC, _OP_MESSAGE, _flat_records
    mcap = next(mcap_result.output.glob('*.mcap'))
    with mcap.open('rb') as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        assert buf[:len(_MCAP_MAGIC)] == _MCAP_MAGIC
        log_ns = [int.from_bytes(body[6:14], 'little')
                  for op, body in _flat_records(buf) if op == _OP_MESSAGE]
    assert len(log_ns) > 150 and log_ns == sorted(log_ns)


def test_action_error_is_the_plan_against_the_recorded_command(recorded, mcap_result):
    """Recompute each replan's action error from the two bags by hand."""
    with BagReader(mcap_result.output) as out:
        plans = [m for _, _, _, m in out.messages(['/vidplan/grounded_plan'])]
        q0s = [m for _, _, _, m in out.messages(['/vidplan/latent/joint_states'])]
    with BagReader(recorded) as src:
        cmds = {cv.time_to_ns(m.header.stamp): m for _, _, _, m in src.messages([CMD])}
    rows = mcap_result.report['score']['per_replan']
    assert len(rows) == len(plans) == len(q0s)
    checked = 0
    for plan, q0, row in zip(plans, q0s, rows):
        stamp = cv.time_to_ns(plan.header.stamp)
        assert row['stamp_s'] == pytest.approx(stamp * 1e-9)
        if stamp not in cmds:      # the episode's end state: no command made from it
            continue
        checked += 1
        times, pos, _ = cv.joint_trajectory_arrays(plan, NAMES)
        ctimes, cpos, _ = cv.joint_trajectory_arrays(cmds[stamp], NAMES)
        q = np.asarray(q0.position)
        planned = np.array([np.interp(0.2, times, pos[:, j]) for j in range(7)])
        expert = np.array([np.interp(0.2, np.r_[0, ctimes], np.r_[q[j], cpos[:, j]])
                           for j in range(7)])
        assert row['action_error_vs_command'] == pytest.approx(np.abs(planned - expert).mean(),
                                                               abs=1e-9)
    assert checked >= len(rows) - 1


def test_sqlite3_jazzy_bag_replays_exactly_like_the_mcap_one(recorded, mcap_result, pipeline,
                                                            tmp_path):
    jazzy = get_typestore(Stores.ROS2_JAZZY)
    t = jazzy.types
    tof = bytes(jazzy.serialize_cdr(t['sensor_msgs/msg/Range'](   # Jazzy added `variance`
        header=t['std_msgs/msg/Header'](stamp=t['builtin_interfaces/msg/Time'](sec=0, nanosec=0),
                                        frame_id='tof'), radiation_type=1, field_of_view=0.1,
        min_range=0.0, max_range=2.0, range=0.5, variance=0.01), 'sensor_msgs/msg/Range'))

    def with_range(topic, ros_type, t_ns, msg):
        extra = [('/tof/range', 'sensor_msgs/msg/Range', tof)] if topic == '/clock' else []
        return [(topic, ros_type, msg), *extra]

    bag = rewrite(recorded, tmp_path / 'sqlite', with_range, storage=StoragePlugin.SQLITE3,
                  version=9, store=Stores.ROS2_JAZZY)
    assert list(bag.glob('*.db3'))
    printed: list[str] = []
    result = replay(bag, tmp_path / 'out', ReplayConfig(), pipeline=pipeline, progress=False,
                    echo=printed.append)
    assert ("  not copied: /tof/range (its sensor_msgs/msg/Range definition differs from ROS 2 "
            "Humble's)") in printed
    assert result.report['score']['replans'] == mcap_result.report['score']['replans']
    np.testing.assert_allclose(action_errors(result), action_errors(mcap_result), atol=1e-6)
    with BagReader(result.output) as out:
        assert out.topics['/joint_states'].count > 0 and '/tof/range' not in out.topics


# --- messy bags --------------------------------------------------------------------------------

FOREIGN = {'/cameras/front/image_raw': '/front_cam/color/image_raw/compressed',
           '/cameras/top/image_raw': '/robot/overhead_top_camera/image_raw',
           '/joint_states': '/franka/joint_states'}
CUSTOM = get_types_from_msg('int32 level\nstring note', 'acme_msgs/msg/Status')


def _messy(topic, ros_type, t_ns, msg):
    """PNG front camera, bgr8 top camera, shuffled joints with extras, an unknown type."""
    if topic == '/cameras/front/image_raw':
        px = cv.image_array(msg)
        out = cv.compressed_image_msg(dds_type, t_ns, 'front', px, fmt='png')
        return [(FOREIGN[topic], 'sensor_msgs/msg/CompressedImage', out)]
    if topic == '/cameras/top/image_raw':
        px = cv.image_array(msg)[..., ::-1]
        return [(FOREIGN[topic], ros_type, cv.image_msg(dds_type, t_ns, 'top', px, 'bgr8'))]
    if topic == '/joint_states':
        order = [8, 3, 0, 7, 6, 5, 1, 2, 4]
        names = list(msg.name) + ['base_yaw', 'lidar_tilt']
        pos = list(msg.position) + [0.5, -0.5]
        order += [9, 10]
        msg = cv.joint_state_msg(dds_type, t_ns, [names[i] for i in order],
                                 [pos[i] for i in order])
        return [(FOREIGN[topic], ros_type, msg),
                ('/acme/status', 'acme_msgs/msg/Status', b'\x00\x01\x00\x00' +
                 (3).to_bytes(4, 'little') + (3).to_bytes(4, 'little') + b'ok\x00')]
    if topic.startswith('/cameras/'):
        return [(topic, ros_type, msg)]
    return [(topic, ros_type, msg)]


def test_compressed_and_reencoded_images_under_other_names(recorded, mcap_result, pipeline,
                                                           tmp_path):
    bag = rewrite(recorded, tmp_path / 'messy', _messy, store=Stores.ROS2_IRON,
                  extra_types=CUSTOM)
    printed: list[str] = []
    result = replay(bag, tmp_path / 'out', ReplayConfig(), pipeline=pipeline, progress=False,
                    echo=printed.append)
    text = '\n'.join(printed)
    assert 'camera front      <- /front_cam/color/image_raw/compressed' in text
    assert 'camera top        <- /robot/overhead_top_camera/image_raw' in text
    assert 'joints            <- /franka/joint_states' in text
    assert 'not copied: /acme/status (type acme_msgs/msg/Status has no ROS 2' in text
    # PNG and bgr8 carry the same pixels, joints are matched by name: the very same plans
    np.testing.assert_allclose(action_errors(result), action_errors(mcap_result), atol=1e-6)
    with BagReader(result.output) as out:
        assert '/acme/status' not in out.topics
        assert out.topics['/front_cam/color/image_raw/compressed'].count > 0


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8', 'png',
                                      'jpeg'])
def test_every_common_image_encoding_decodes_to_rgb(encoding):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    if encoding == 'mono8':
        rgb = np.repeat(rgb[..., :1], 3, axis=2)
    if encoding in ('png', 'jpeg'):
        rgb = np.kron(rgb[::8, ::8], np.ones((8, 8, 1), np.uint8))   # smooth for jpeg
        msg = cv.compressed_image_msg(dds_type, 0, 'cam', rgb, fmt=encoding, quality=95)
        got = frame_rgb(dds_type('sensor_msgs/msg/CompressedImage').deserialize(
            msg.serialize()), 'sensor_msgs/msg/CompressedImage')
        tol = 0 if encoding == 'png' else 12
    else:
        px = {'rgb8': rgb, 'bgr8': rgb[..., ::-1], 'mono8': rgb[..., 0],
              'rgba8': np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
              'bgra8': np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])
              }[encoding]
        msg = cv.image_msg(dds_type, 0, 'cam', px if px.ndim == 3 else px[..., None],
                           encoding)
        got = frame_rgb(msg, 'sensor_msgs/msg/Image')
        tol = 0
    assert got.shape == rgb.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - rgb).mean() <= tol


def test_joint_names_of_another_robot_are_a_clear_error(recorded, pipeline, tmp_path):
    kuka = [f'joint_a{i}' for i in range(1, 8)]

    def rename(topic, ros_type, t_ns, msg):
        if topic == '/joint_states':
            msg = cv.joint_state_msg(dds_type, t_ns, kuka, list(msg.position)[:7])
        elif topic == CMD:
            return []
        return [(topic, ros_type, msg)]

    bag = rewrite(recorded, tmp_path / 'kuka', rename)
    with pytest.raises(ReplayError) as err:
        replay(bag, tmp_path / 'out', FAST, pipeline=pipeline, progress=False,
               echo=lambda s: None)
    text = str(err.value)
    assert 'joint names in the bag differ' in text and 'fr3_joint1' in text
    assert 'joint_a1' in text and '--joint-map' in text
    assert not (tmp_path / 'out').exists()            # a user error: nothing written
    # the same joints under other names: map them
    mapping = tuple(f'{a}={b}' for a, b in zip(kuka, NAMES))
    result = replay(bag, tmp_path / 'out', ReplayConfig(joint_map=mapping, preview_every=0,
                                                        duration_s=0.3),
                    pipeline=pipeline, progress=False, echo=lambda s: None)
    assert result.report['score']['replans'] == 2
    assert result.report['inputs']['reference'] is None
    assert result.report['score']['action_error_rad']['vs_recorded_motion']['count'] == 1


def test_missing_camera_lists_what_is_needed_and_what_the_bag_holds(recorded, pipeline,
                                                                    tmp_path):
    bag = rewrite(recorded, tmp_path / 'one_cam',
                  lambda topic, typ, t, msg: [] if '/top/' in topic else [(topic, typ, msg)])
    with pytest.raises(ReplayError, match=r"no image topic for camera\(s\) \['top'\]") as err:
        replay(bag, tmp_path / 'out', FAST, pipeline=pipeline, progress=False,
               echo=lambda s: None)
    assert '/cameras/front/image_raw (sensor_msgs/msg/Image)' in str(err.value)
    assert '--camera top=<topic>' in str(err.value)


def test_truncated_bag_is_a_clear_error_and_the_output_is_closed(recorded, pipeline,
                                                                 tmp_path):
    bag = tmp_path / 'cut'
    shutil.copytree(recorded, bag)
    mcap = next(bag.glob('*.mcap'))
    with mcap.open('r+b') as fh:
        fh.truncate(mcap.stat().st_size // 2)
    with pytest.raises(ReplayError, match='truncated or corrupt') as err:
        replay(bag, tmp_path / 'out', FAST, pipeline=pipeline, progress=False,
               echo=lambda s: None)
    assert 'recover' in str(err.value)
    with BagReader(tmp_path / 'out') as out:
        assert out.metadata['complete'] is False and 'truncated' in out.metadata['error']
    assert (tmp_path / 'out' / 'replay_report.json').exists()


def test_corrupt_chunk_stops_the_replay_and_the_output_keeps_what_was_read(recorded, pipeline,
                                                                           tmp_path):
    def large(topic, ros_type, t_ns, msg):   # 256 px frames: several ~1 MiB chunks
        if ros_type == 'sensor_msgs/msg/Image':
            px = np.kron(cv.image_array(msg), np.ones((4, 4, 1), np.uint8))
            msg = cv.image_msg(dds_type, t_ns, msg.header.frame_id, px)
        return [(topic, ros_type, msg)]

    bag = rewrite(recorded, tmp_path / 'corrupt', large, zstd=True)
    mcap = next(bag.glob('*.mcap'))
    size = mcap.stat().st_size
    with mcap.open('r+b') as fh:              # a later chunk's zstd data; the index intact
        fh.seek(int(size * 0.6))
        fh.write(b'\x00' * 4096)
    with pytest.raises(ReplayError, match='cannot be read past') as err:
        replay(bag, tmp_path / 'out', FAST, pipeline=pipeline, progress=False,
               echo=lambda s: None)
    assert 'truncated or corrupt' in str(err.value) and 'complete: false' in str(err.value)
    with BagReader(tmp_path / 'out') as out:
        assert out.metadata['complete'] is False
        assert out.metadata['replans'] >= 1                   # what came before the damage
        assert out.topics['/vidplan/grounded_plan'].count == out.metadata['replans']
        list(out.messages())                                   # readable to the end
    report = (tmp_path / 'out' / 'replay_report.md').read_text()
    assert 'INCOMPLETE' in report and 'cannot be read past' in report


def test_g1_bag_with_lowstate_only(tmp_path):
    """A G1 recording without /joint_states: the joints come from unitree_hg LowState (the
    robot spec's motor slots) and plan as from the JointState (float32 on the wire)."""
    from vidplan_ros.data.collect import CollectConfig, collect
    bag = collect(CollectConfig(robot='unitree_g1', task='g1/reach', episodes=1, seed0=3,
                                image_width=64, image_height=64, max_time_s=0.6),
                  tmp_path / 'g1', progress=False).bags[0]
    cfg = ReplayConfig(method='inverse_dynamics', preview_every=0)
    full = replay(bag, tmp_path / 'a', cfg, progress=False, echo=lambda s: None)
    unitree = {}
    for name, text in UNITREE_HG_MSGS.items():
        unitree.update(get_types_from_msg(text.strip(), f'unitree_hg/msg/{name}'))
    lowstate = rewrite(bag, tmp_path / 'lowstate', lambda topic, typ, t, msg:
                       [] if topic == '/joint_states' else [(topic, typ, msg)],
                       extra_types=unitree)
    printed: list[str] = []
    only = replay(lowstate, tmp_path / 'b', replace(cfg, model='g1_reach'),  # no metadata
                  progress=False, echo=printed.append)
    assert any('joints            <- /lowstate (LowState' in line for line in printed)
    assert only.report['score']['replans'] == full.report['score']['replans'] >= 3
    np.testing.assert_allclose(action_errors(only), action_errors(full), atol=1e-4)


# --- the command ---------------------------------------------------------------------------------

def test_vidplan_replay_command_at_the_recorded_pace(recorded, tmp_path, capsys):
    import time

    from vidplan_ros.cli import main as vidplan
    out = tmp_path / 'cli'
    t0 = time.perf_counter()
    rc = vidplan(['replay', str(recorded), '--out', str(out), '--method', 'inverse_dynamics',
                  '--duration', '0.5', '--timing', 'recorded', '--rate', '2',
                  '--latency', 'measured', '--threads', '1', '--no-progress'])
    assert rc == 0
    assert time.perf_counter() - t0 >= 0.4 / 2    # the last message is at 0.4 s
    printed = capsys.readouterr().out
    assert 'camera front      <- /cameras/front/image_raw' in printed
    assert 'frames/s' in printed and 'replay_report.md' in printed
    with BagReader(out) as bag:
        for log_ns, _, _, plan in [(m.t_ns, 0, 0, m.message)
                                   for m in bag.messages(['/vidplan/grounded_plan'])]:
            assert log_ns > cv.time_to_ns(plan.header.stamp)   # its compute time later
    assert main([str(recorded), '--model', 'no_such_model', '--out', str(tmp_path / 'x')]) == 2
    assert 'no model set' in capsys.readouterr().err
    assert main([str(recorded), '--out', str(out)]) == 2          # never over a result
    assert 'exists already' in capsys.readouterr().err
    assert main([str(tmp_path / 'no_bag'), '--out', str(tmp_path / 'y')]) == 2
    assert 'no bag at' in capsys.readouterr().err and not (tmp_path / 'y').exists()
