"""The grounding node in its own process over DDS: latent + joints + video plan in (matched by
stamp), a joint trajectory the executor accepts and its feasibility figures out, warm-started;
stale and unmatched inputs skipped."""

import numpy as np
import pytest

from vidplan_ros.core.executor import Executor, ExecutorConfig, GroundedPlan
from vidplan_ros.nodes.diagnostics import diagnostic_values
from vidplan_ros.transport import create_node
from vidplan_ros.transport import convert as cv

from test.nodes.stage_helpers import REPO, Latest, NodeProcess, heldout_observation, spin_until

KEY = 'vidplan_grounding: grounding'


@pytest.fixture(scope='module')
def rig(tmp_path_factory):
    proc = NodeProcess('vidplan_ros.nodes.grounding_node',
                       tmp_path_factory.mktemp('grounding') / 'grounding.log',
                       'max_input_age_s:=2.0', 'warm_start:=true', 'step_gain:=1.25')
    from vidplan_ros.runtime.pipeline import Pipeline, PipelineConfig
    pipeline = Pipeline(PipelineConfig(threads=1))
    node = create_node('grounding_test')
    rig = {'node': node, 'pipeline': pipeline, 'proc': proc, 'diag': {}, 'traj': Latest(),
           'feas': []}
    t = 'sensor_msgs/msg/'
    rig['pubs'] = (node.create_publisher(t + 'JointState', '/vidplan/latent/joint_states'),
                   node.create_publisher(t + 'Image', '/vidplan/latent'),
                   node.create_publisher(t + 'Image', '/vidplan/video_plan'))
    subs = [node.create_subscription('trajectory_msgs/msg/JointTrajectory',
                                     '/vidplan/grounded_plan', rig['traj']),
            node.create_subscription('std_msgs/msg/Float64MultiArray',
                                     '/vidplan/grounded_plan/feasibility',
                                     lambda m: rig['feas'].append(list(m.data)))]
    node.create_subscription('diagnostic_msgs/msg/DiagnosticArray', '/diagnostics',
                             lambda m: rig['diag'].update(diagnostic_values(m)))
    try:
        spin_until(node, lambda: all(p.get_subscription_count() for p in rig['pubs'])
                   and all(s.get_publisher_count() for s in subs), 40, proc)
        yield rig
    finally:
        proc.stop()
        node.shutdown()


def _observe(rig, index, stamp_ns, parts=('joints', 'latent', 'plan')):
    """Publish (some of) observation `index`'s latent, joints and video plan at `stamp_ns`."""
    p, t = rig['pipeline'], rig['node'].msg_type
    frames, q = heldout_observation(index)
    z = p.encode(p.preprocess(frames))
    plan = p.imagine(z, q, p.noise(index))
    pub_q, pub_z, pub_plan = rig['pubs']
    if 'joints' in parts:
        pub_q.publish(cv.joint_state_msg(t, stamp_ns, p.spec.joint_names, q))
    if 'latent' in parts:
        pub_z.publish(cv.latent_msg(t, stamp_ns, z))
    if 'plan' in parts:
        pub_plan.publish(cv.latent_msg(t, stamp_ns, plan, 'video_plan'))
    return q


def _feasibility(rig, stamp_ns):
    """[stamp_s, residual, alignment] published for `stamp_ns`, or None. (Seconds as a float64
    hold wall-clock stamps only to ~0.2 us, so they are compared with a tolerance.)"""
    return next((f for f in rig['feas'] if abs(f[0] - stamp_ns * 1e-9) < 1e-6), None)


def _count(rig, name):
    return int(rig['diag'].get(KEY, {}).get(name, 0))


def test_an_observation_older_than_max_input_age_is_skipped(rig):
    # first, while nothing newer has been used (newer ones make older ones out of order)
    node = rig['node']
    old = node.now_ns() - 5_000_000_000
    _observe(rig, 2, old)
    spin_until(node, lambda: _count(rig, 'dropped_stale') >= 1, 20, rig['proc'])
    assert old not in rig['traj'].by_stamp and 'check the clocks' in rig['proc'].output()


def test_grounded_plans_are_stamped_feasible_and_accepted_by_the_executor(rig):
    node, p = rig['node'], rig['pipeline']
    spec = p.spec
    for k in range(2):
        stamp = node.now_ns()
        q = _observe(rig, k, stamp)
        spin_until(node, lambda s=stamp: s in rig['traj'].by_stamp and _feasibility(rig, s),
                   20, rig['proc'])
        msg = rig['traj'].by_stamp[stamp]
        assert list(msg.joint_names) == list(spec.joint_names)
        times, pos, vel = cv.joint_trajectory_arrays(msg, spec.joint_names)
        # one point per plan step (k + 1) * plan_dt_s, after the observed joints at 0 if given
        np.testing.assert_allclose(times[-p.horizon:], p.plan_dt_s * np.arange(1, p.horizon + 1),
                                   atol=1e-9)
        assert len(times) == p.horizon or (len(times) == p.horizon + 1 and times[0] == 0.0)
        assert np.all(np.isfinite(pos))
        assert np.all(pos >= np.asarray(spec.position_min_rad) + spec.position_margin_rad - 1e-9)
        assert np.all(pos <= np.asarray(spec.position_max_rad) - spec.position_margin_rad + 1e-9)
        _, residual, alignment = _feasibility(rig, stamp)
        assert np.isfinite([residual, alignment]).all()
        ex = Executor(spec, ExecutorConfig())
        ex.on_state(q, np.zeros_like(q), stamp * 1e-9)
        ex.step(stamp * 1e-9)
        decision = ex.on_plan(GroundedPlan(stamp * 1e-9, times, pos, vel, residual, alignment,
                                           'grounding'))
        assert decision.accepted, decision.reason
    # the second observation was 1 plan step or less later: warm-started from the first
    spin_until(node, lambda: int(rig['diag'].get(KEY, {}).get('grounded', 0)) >= 2, 5,
               rig['proc'])
    assert int(rig['diag'][KEY]['warm_starts']) >= 1
    assert float(rig['diag'][KEY]['ground_ms_p50']) > 0


def test_stale_unmatched_and_bad_inputs_are_skipped(rig):
    node = rig['node']
    t = node.msg_type
    unmatched = node.now_ns()
    _observe(rig, 3, unmatched, parts=('joints', 'latent'))     # no video plan for it
    rig['pubs'][2].publish(cv.latent_msg(t, node.now_ns(), np.zeros((5, 8), np.float32)))
    spin_until(node, lambda: _count(rig, 'dropped_bad_video_plan') >= 1, 20, rig['proc'])
    stamp = node.now_ns()
    _observe(rig, 4, stamp)
    spin_until(node, lambda: stamp in rig['traj'].by_stamp, 20, rig['proc'])
    assert unmatched not in rig['traj'].by_stamp
    _observe(rig, 5, stamp - 1000, parts=('joints',))     # older than the last one used
    spin_until(node, lambda: _count(rig, 'dropped_out_of_order') >= 1, 20, rig['proc'])
    assert 'Traceback' not in rig['proc'].output()


def test_the_auto_backend_in_use_is_reported(rig):
    spin_until(rig['node'], lambda: 'pipeline.backend_name' in rig['diag'].get(KEY, {}), 10,
               rig['proc'])
    assert rig['diag'][KEY]['pipeline.backend_name'] == rig['pipeline'].backend_name
    assert rig['proc'].output().count('networks on backend ') == 1
    # the step_gain parameter overrides the model set's calibration (franka_reach: 1.5)
    assert rig['diag'][KEY]['step_gain'] == '1.25'


def test_the_shipped_params_files_configure_the_node():
    from vidplan_ros.core.baselines import GrounderConfig
    from vidplan_ros.core.config import config_from_params, load_config, read_params_file
    from vidplan_ros.nodes.grounding_node import GroundingNodeConfig
    files = [REPO / 'config' / 'grounding.yaml', REPO / 'config' / 'grounding_node.yaml']
    params = {k: v for f in files for k, v in read_params_file(f).items()}
    cfg = config_from_params(GroundingNodeConfig, params)
    assert cfg.grounder() == load_config(GrounderConfig, files[0])
    assert cfg == load_config(GroundingNodeConfig, files[0])     # node defaults = its file
