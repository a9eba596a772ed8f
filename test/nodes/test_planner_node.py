"""The planner node in its own process over DDS: a latent + joints in, the pipeline's video plan
(replan k with noise k) and a preview out with the latent's stamp; bad latents survived."""

import numpy as np
import pytest

from vidplan_ros.nodes.diagnostics import diagnostic_values
from vidplan_ros.transport import QOS_LATCHED, create_node
from vidplan_ros.transport import convert as cv

from test.nodes.stage_helpers import REPO, Latest, NodeProcess, heldout_observation, spin_until


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    proc = NodeProcess('vidplan_ros.nodes.planner_node',
                       tmp_path_factory.mktemp('planner') / 'planner.log', 'preview_every:=1')
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    pipeline = Pipeline(PipelineConfig(threads=1))
    node = create_node('planner_test')
    rig = {'node': node, 'pipeline': pipeline, 'proc': proc, 'diag': {}, 'plan': Latest(),
           'preview': Latest()}
    rig['pub_z'] = node.create_publisher('sensor_msgs/msg/Image', '/vidplan/latent')
    rig['pub_q'] = node.create_publisher('sensor_msgs/msg/JointState',
                                         '/vidplan/latent/joint_states')
    subs = [node.create_subscription('sensor_msgs/msg/Image', '/vidplan/video_plan',
                                     rig['plan']),
            node.create_subscription('sensor_msgs/msg/Image', '/vidplan/plan_preview',
                                     rig['preview'], QOS_LATCHED)]
    node.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                             lambda m: rig['diag'].update(diagnostic_values(m)))
    try:
        spin_until(node, lambda: rig['pub_z'].get_subscription_count()
                   and rig['pub_q'].get_subscription_count()
                   and all(s.get_publisher_count() for s in subs), 40, proc)
        yield rig
    finally:
        proc.stop()
        node.shutdown()


def _observe(rig, index, stamp_ns):
    """Publish the latent of held-out observation `index` and its joints; return both."""
    p, t = rig['pipeline'], rig['node'].msg_type
    frames, q = heldout_observation(index)
    z = p.encode(p.preprocess(frames))
    rig['pub_q'].publish(cv.joint_state_msg(t, stamp_ns, p.spec.joint_names, q))
    rig['pub_z'].publish(cv.latent_msg(t, stamp_ns, z))
    return z, q


def test_plans_are_the_pipelines_with_noise_per_replan_and_previews(rig):
    node, p = rig['node'], rig['pipeline']
    h, (v, c, lh, w) = p.horizon, p.latent_shape
    for k in range(2):
        stamp = node.now_ns()
        z, q = _observe(rig, k, stamp)
        spin_until(node, lambda s=stamp: s in rig['plan'].by_stamp
                   and s in rig['preview'].by_stamp, 20, rig['proc'])
        msg = rig['plan'].by_stamp[stamp]
        assert (msg.height, msg.width, msg.encoding) == (h * v * c * lh, w, '32FC1')
        plan = cv.latent_array(msg, (h, v, c, lh, w))
        np.testing.assert_allclose(plan, p.imagine(z, q, p.noise(k)), atol=2e-3)
        preview = rig['preview'].by_stamp[stamp]
        s = p.image_size
        assert (preview.height, preview.width, preview.encoding) == (v * s, h * s, 'rgb8')
        tiles = cv.image_array(preview)
        frames = p.decode(plan)
        # views top to bottom, time left to right; decoded here from the received plan
        for t_k, view in ((0, 0), (h - 1, v - 1)):
            tile = tiles[view * s:(view + 1) * s, t_k * s:(t_k + 1) * s].astype(int)
            assert np.abs(tile - frames[t_k, view]).mean() < 2.0


def test_bad_latents_and_joints_are_reported_and_survived(rig):
    node = rig['node']
    t = node.msg_type
    key = 'vidplan_planner: planner'

    def count(name):
        return int(rig['diag'].get(key, {}).get(name, 0))

    stamp = node.now_ns()
    rig['pub_z'].publish(cv.latent_msg(t, stamp, np.zeros((3, 8), np.float32)))   # wrong shape
    rig['pub_q'].publish(cv.joint_state_msg(t, stamp, ['elbow'], [0.0]))          # wrong joints
    spin_until(node, lambda: count('dropped_bad_latent') and count('dropped_bad_joint_state'),
               20, rig['proc'])
    stamp = node.now_ns()
    _observe(rig, 3, stamp)
    spin_until(node, lambda: stamp in rig['plan'].by_stamp, 20, rig['proc'])
    out = rig['proc'].output()
    assert 'this model needs 128 x 8' in out and 'lacks joints' in out
    assert 'Traceback' not in out


def test_the_auto_backend_in_use_is_reported(rig):
    key = 'vidplan_planner: planner'
    spin_until(rig['node'], lambda: 'pipeline.backend_name' in rig['diag'].get(key, {}), 10,
               rig['proc'])
    assert rig['diag'][key]['pipeline.backend_name'] == rig['pipeline'].backend_name
    assert rig['proc'].output().count('networks on backend ') == 1


def test_an_unknown_backend_stops_the_node_naming_the_parameter(tmp_path):
    proc = NodeProcess('vidplan_ros.nodes.planner_node', tmp_path / 'magic.log',
                       'backend:=magic')
    try:
        assert proc.proc.wait(60) != 0
    finally:
        proc.stop()
    out = proc.output()
    assert "key 'backend' = 'magic' is not allowed" in out
    assert "'onnxruntime'" in out and "'torch'" in out


@pytest.mark.parametrize('field, value', [('backend', 'magic'), ('precision', 'fp64')])
def test_the_stage_configs_check_backend_parameters_as_the_pipeline_does(field, value):
    from vidplan_ros.core.errors import ConfigValueError
    from vidplan_ros.nodes.grounding_node import GroundingNodeConfig
    from vidplan_ros.nodes.perception_node import PerceptionNodeConfig
    from vidplan_ros.nodes.planner_node import PlannerNodeConfig
    from vidplan_ros.runtime.pipeline import PipelineConfig
    for cls in (PerceptionNodeConfig, PlannerNodeConfig, GroundingNodeConfig, PipelineConfig):
        assert (cls().backend, cls().precision) == ('auto', 'fp32')
        with pytest.raises(ConfigValueError, match=field):
            cls(**{field: value})
    assert GroundingNodeConfig().world_model_grad == PipelineConfig.world_model_grad
    with pytest.raises(ConfigValueError, match='world_model_grad'):
        GroundingNodeConfig(world_model_grad='vjp')


def test_tiling_puts_views_in_rows_and_time_in_columns():
    from vidplan_ros.nodes.planner_node import tile_plan_frames
    frames = np.zeros((3, 2, 4, 4, 3), np.uint8)
    for k in range(3):
        for v in range(2):
            frames[k, v] = 10 * k + v
    tiled = tile_plan_frames(frames)
    assert tiled.shape == (8, 12, 3)
    assert tiled[5, 9, 0] == 21 and tiled[0, 0, 0] == 0 and tiled[4, 0, 0] == 1


def test_the_shipped_params_file_configures_the_node():
    from vidplan_ros.core.config import load_config
    from vidplan_ros.nodes.planner_node import PlannerNodeConfig
    assert load_config(PlannerNodeConfig, REPO / 'config' / 'planner.yaml') == PlannerNodeConfig()
