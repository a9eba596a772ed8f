"""The perception node in its own process over DDS: frames + joints in, the pipeline's latent out;
bad frames and joints are reported and survived; the inference backend is a parameter."""

import json

import numpy as np
import pytest

from vidplan_ros.nodes.diagnostics import diagnostic_values
from vidplan_ros.transport import create_node
from vidplan_ros.transport import convert as cv

from test.nodes.stage_helpers import (FRANKA_REACH_CAMERAS, REPO, Latest, NodeProcess,
                                     heldout_observation, spin_until)

MODULE = 'vidplan_ros.nodes.perception_node'
FIRST, SECOND = FRANKA_REACH_CAMERAS      # the default model set's views, in its order


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    """A raw and a compressed perception node, a test node, and the pipeline as reference."""
    logs = tmp_path_factory.mktemp('perception')
    raw = NodeProcess(MODULE, logs / 'raw.log', 'rate_hz:=20.0')
    comp = NodeProcess(MODULE, logs / 'compressed.log', 'rate_hz:=20.0',
                       'image_transport:=compressed', 'latent_topic:=/vidplan/latent_c',
                       'backend:=torch', name='perception_c')
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    pipeline = Pipeline(PipelineConfig(threads=1))
    node = create_node('perception_test')
    t = 'sensor_msgs/msg/'
    rig = {'node': node, 'pipeline': pipeline, 'procs': (raw, comp), 'diag': {},
           'latent': Latest(), 'joints': Latest(), 'latent_c': Latest()}
    rig['pub'] = {(cam, kind): node.create_publisher(
        t + ('CompressedImage' if kind == 'c' else 'Image'),
        f'/cameras/{cam}/image_raw' + ('/compressed' if kind == 'c' else ''))
        for cam in (FIRST, SECOND) for kind in ('r', 'c')}
    rig['pub_js'] = node.create_publisher(t + 'JointState', '/joint_states')
    subs = [node.create_subscription(t + 'Image', '/vidplan/latent', rig['latent']),
            node.create_subscription(t + 'JointState', '/vidplan/latent/joint_states',
                                     rig['joints']),
            node.create_subscription(t + 'Image', '/vidplan/latent_c', rig['latent_c'])]
    node.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                             lambda m: rig['diag'].update(diagnostic_values(m)))
    try:
        spin_until(node, lambda: all(p.get_subscription_count() for p in rig['pub'].values())
                   and all(s.get_publisher_count() for s in subs), 40, raw, comp)
        yield rig
    finally:
        raw.stop()
        comp.stop()
        node.shutdown()


def _joints(rig, stamp_ns, q):
    """Joint states 10 ms either side of `stamp_ns` (q - d, q + d), names shuffled, plus a
    finger joint the model does not use."""
    spec, node = rig['pipeline'].spec, rig['node']
    names = list(spec.joint_names)[::-1] + ['fr3_finger_joint1']
    for dt_ns, sign in ((-10_000_000, -1), (10_000_000, 1)):
        pos = np.concatenate([(q + sign * 0.01)[::-1], [0.04]])
        rig['pub_js'].publish(cv.joint_state_msg(node.msg_type, stamp_ns + dt_ns, names, pos))


def _frames(rig, stamp_ns, frames, kind='r', second_encoding='bgr8', skew_ns=10_000_000):
    t = rig['node'].msg_type
    for cam, pixels in frames.items():
        stamp = stamp_ns + (skew_ns if cam == SECOND else 0)
        if kind == 'c':
            msg = cv.compressed_image_msg(t, stamp, cam, pixels, 'png')
        elif cam == SECOND and second_encoding == 'bgr8':
            msg = cv.image_msg(t, stamp, cam, pixels[..., ::-1], 'bgr8')
        else:
            msg = cv.image_msg(t, stamp, cam, pixels, 'rgb8')
        rig['pub'][(cam, kind)].publish(msg)


def _widened(frames):
    """Frames 64 x 80: the heldout 64 x 64 picture with 8 columns of noise either side, which
    the centre crop removes."""
    rng = np.random.default_rng(1)
    return {c: np.concatenate([rng.integers(0, 255, (64, 8, 3), np.uint8), f,
                               rng.integers(0, 255, (64, 8, 3), np.uint8)], axis=1)
            for c, f in frames.items()}


def _diag_count(rig, node_name, key):
    return int(rig['diag'].get(f'{node_name}: perception', {}).get(key, 0))


def test_latent_is_the_pipelines_encoding_with_joints_at_the_stamp(rig):
    node, pipeline = rig['node'], rig['pipeline']
    frames, q = heldout_observation(0)
    stamp = node.now_ns()
    _joints(rig, stamp, q)
    node.spin(timeout_s=0.1)
    _frames(rig, stamp, _widened(frames))
    spin_until(node, lambda: stamp in rig['latent'].by_stamp and stamp in rig['joints'].by_stamp,
               20, *rig['procs'])
    expect = pipeline.encode(pipeline.preprocess(frames))
    latent = cv.latent_array(rig['latent'].by_stamp[stamp], pipeline.latent_shape)
    np.testing.assert_allclose(latent, expect, atol=1e-4)
    js = rig['joints'].by_stamp[stamp]
    assert list(js.name) == list(pipeline.spec.joint_names)
    np.testing.assert_allclose(js.position, q, atol=1e-9)   # interpolated half way


def test_bad_frames_and_joints_are_reported_and_survived(rig):
    node = rig['node']
    frames, q = heldout_observation(1)
    name = 'vidplan_perception'

    def observe_and_wait(key, publish):
        before = _diag_count(rig, name, key)
        stamp = node.now_ns()
        _joints(rig, stamp, q)
        node.spin(timeout_s=0.05)
        publish(stamp)
        spin_until(node, lambda: _diag_count(rig, name, key) > before, 20, *rig['procs'])

    t = node.msg_type

    def depth_frame(stamp):  # an encoding that cannot be colour
        _frames(rig, stamp, {SECOND: frames[SECOND]})
        rig['pub'][(FIRST, 'r')].publish(cv.image_msg(t, stamp, FIRST,
                                                        np.zeros((8, 8), np.float32), '32FC1'))

    def empty_frame(stamp):  # a 0 x 0 picture
        _frames(rig, stamp, {SECOND: frames[SECOND]})
        rig['pub'][(FIRST, 'r')].publish(t('sensor_msgs/msg/Image')(
            header=cv.header(t, stamp), height=0, width=0, encoding='rgb8', step=0, data=b''))

    def nan_joint(stamp):
        msg = cv.joint_state_msg(t, stamp, rig['pipeline'].spec.joint_names, q * np.nan)
        rig['pub_js'].publish(msg)

    def one_camera(stamp):  # the second camera stops
        _frames(rig, stamp + 1_000_000_000, {FIRST: frames[FIRST]})

    observe_and_wait('dropped_bad_image', depth_frame)
    observe_and_wait('dropped_bad_image', empty_frame)
    observe_and_wait('dropped_joint_state', nan_joint)
    observe_and_wait('dropped_missing_camera', one_camera)
    # ... and a good observation afterwards still makes a latent
    stamp = node.now_ns() + 500_000_000
    _joints(rig, stamp, q)
    node.spin(timeout_s=0.05)
    _frames(rig, stamp, frames)
    spin_until(node, lambda: stamp in rig['latent'].by_stamp, 20, *rig['procs'])
    out = rig['procs'][0].output()
    assert 'cannot be used as colour' in out  # the 0 x 0 one: the same warning, throttled
    assert 'non-finite positions' in out and f"no frame from camera(s) ['{SECOND}']" in out
    assert 'Traceback' not in out


def test_compressed_frames_decode_and_corrupt_ones_are_survived(rig):
    node, pipeline = rig['node'], rig['pipeline']
    frames, q = heldout_observation(2)
    t = node.msg_type
    before = _diag_count(rig, 'perception_c', 'dropped_bad_image')
    stamp = node.now_ns()
    _joints(rig, stamp, q)
    node.spin(timeout_s=0.05)
    _frames(rig, stamp, {SECOND: frames[SECOND]}, 'c')
    bad = cv.compressed_image_msg(t, stamp, FIRST, frames[FIRST], 'jpeg')
    bad.data = bytes(bad.data)[: len(bad.data) // 3]
    rig['pub'][(FIRST, 'c')].publish(bad)

    spin_until(node, lambda: _diag_count(rig, 'perception_c', 'dropped_bad_image') > before,
               20, *rig['procs'])
    stamp = node.now_ns() + 100_000_000
    _joints(rig, stamp, q)
    node.spin(timeout_s=0.05)
    _frames(rig, stamp, frames, 'c')
    spin_until(node, lambda: stamp in rig['latent_c'].by_stamp, 20, *rig['procs'])
    latent = cv.latent_array(rig['latent_c'].by_stamp[stamp], pipeline.latent_shape)
    np.testing.assert_allclose(latent, pipeline.encode(pipeline.preprocess(frames)), atol=1e-4)
    out = rig['procs'][1].output()
    assert 'does not decode' in out and 'Traceback' not in out


def test_the_inference_backend_is_a_parameter_logged_once_and_reported(rig):
    """The raw node runs the default (auto: the reference pipeline's choice, onnxruntime on a
    CPU host), the compressed one `backend:=torch` (its latents match the reference's above)."""
    auto = rig['pipeline'].backend_name
    expect = {'vidplan_perception': (auto, rig['procs'][0]), 'perception_c': ('torch',
                                                                               rig['procs'][1])}
    spin_until(rig['node'], lambda: all('pipeline.backend_name' in rig['diag'].get(
        f'{name}: perception', {}) for name in expect), 10, *rig['procs'])
    for name, (backend, proc) in expect.items():
        values = rig['diag'][f'{name}: perception']
        assert values['pipeline.backend_name'] == backend
        assert json.loads(values['pipeline.backend'])['backend'] == backend
        assert proc.output().count('networks on backend ') == 1
        assert f'networks on backend {backend} ' in proc.output()


def test_the_shipped_params_file_configures_the_node():
    from vidplan_ros.core.config import load_config
    from vidplan_ros.nodes.perception_node import PerceptionNodeConfig
    cfg = load_config(PerceptionNodeConfig, REPO / 'config' / 'perception.yaml')
    assert cfg == PerceptionNodeConfig()


def test_g1_perception_reads_its_joints_from_lowstate_motor_slots(tmp_path):
    """A robot commanded over unitree_hg (G1) publishes no JointState: by default perception
    takes q from /lowstate (DDS rt/lowstate) at the spec's motor slots, and drops a LowState
    with a wrong CRC."""
    from vidplan_ros.core.robot_spec import load_robot_spec
    spec = load_robot_spec('unitree_g1')
    proc = NodeProcess(MODULE, tmp_path / 'g1.log', 'model:=g1_reach', 'rate_hz:=20.0',
                       name='perception_g1')
    node = create_node('perception_g1_test')
    try:
        t = node.msg_type
        pub_ls = node.create_publisher('unitree_hg/msg/LowState', '/lowstate')
        pubs = {c: node.create_publisher('sensor_msgs/msg/Image', f'/cameras/{c}/image_raw')
                for c in ('head', 'front')}
        joints, diag = Latest(), {}
        subs = [node.create_subscription('sensor_msgs/msg/JointState',
                                         '/vidplan/latent/joint_states', joints),
                node.create_subscription('sensor_msgs/msg/Image', '/vidplan/latent',
                                         lambda m: None)]
        node.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                                 lambda m: diag.update(diagnostic_values(m)))
        spin_until(node, lambda: pub_ls.get_subscription_count() and all(
            p.get_subscription_count() for p in pubs.values())
            and all(s.get_publisher_count() for s in subs), 60, proc)
        d = np.load(REPO / 'models' / 'g1_reach' / 'heldout.npz')
        q = d['q'][0, 0].astype(np.float64)
        full = np.zeros(cv.UNITREE_MOTORS)
        full[list(spec.unitree.motor_indices)] = q
        full[:12] = 9.0                 # legs: not the model's joints

        def lowstates(q_full, n, crc_ok=True):
            for k in range(n):
                msg = cv.lowstate_msg(t, k, 5, q_full, np.zeros(cv.UNITREE_MOTORS),
                                      np.zeros(cv.UNITREE_MOTORS))
                if not crc_ok:
                    msg.crc = (msg.crc + 1) & 0xFFFFFFFF
                pub_ls.publish(msg)
                node.spin(timeout_s=0.01)

        wrong = full.copy()
        wrong[list(spec.unitree.motor_indices)] += 0.5
        lowstates(wrong, 3, crc_ok=False)          # a wrong CRC: dropped, never used
        lowstates(full, 10)
        stamp = node.now_ns()
        for i, cam in enumerate(('head', 'front')):
            pubs[cam].publish(cv.image_msg(t, stamp, cam, d['images'][0, 0, i], 'rgb8'))
        lowstates(full, 10)
        spin_until(node, lambda: stamp in joints.by_stamp, 30, proc)
        js = joints.by_stamp[stamp]
        assert list(js.name) == list(spec.joint_names)
        np.testing.assert_allclose(js.position, q, atol=1e-9)
        spin_until(node, lambda: int(diag.get('perception_g1: perception', {}).get(
            'dropped_joint_state', 0)) >= 1, 10, proc)
        assert 'wrong CRC' in proc.output() and 'Traceback' not in proc.output()
    finally:
        proc.stop()
        node.shutdown()
