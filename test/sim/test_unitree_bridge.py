"""The G1 low-level semantics the sim applies to LowCmd frames."""

import numpy as np
import pytest

from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.sim.unitree_bridge import UnitreeBridgeConfig, UnitreeLowLevel

SPEC = load_robot_spec('unitree_g1')
SLOTS = np.array(SPEC.unitree.motor_indices)


def frame(q=0.3, kp=50.0, mode=1, weight=None):
    f = {k: np.zeros(35) for k in ('q', 'dq', 'tau', 'kp', 'kd')}
    f['q'][SLOTS], f['kp'][SLOTS], f['kd'][SLOTS] = q, kp, 2.0
    f['mode'] = np.full(35, mode, np.uint8)
    if weight is not None:
        f['q'][29] = weight
    return f


def test_builtin_holds_ready_pose_without_commands():
    ll = UnitreeLowLevel(SPEC)
    c = ll.command(0.0)
    np.testing.assert_array_equal(c.q_des, SPEC.ready_pose_rad)
    np.testing.assert_array_equal(c.kp, SPEC.kp)


def test_lowcmd_direct_and_disabled_motors_limp():
    ll = UnitreeLowLevel(SPEC)
    f = frame()
    f['mode'][SLOTS[0]] = 0
    ll.on_frame('lowcmd', f, 1.0)
    c = ll.command(1.05)
    assert c.q_des[1] == 0.3 and c.kp[1] == 50.0
    assert c.kp[0] == 0.0 and c.kd[0] == 0.0  # mode 0: limp


@pytest.mark.parametrize('weight, expect', [(1.0, 1.0), (0.25, 0.25), (7.0, 1.0), (-1.0, 0.0)])
def test_arm_sdk_weight_blends_and_is_clamped(weight, expect):
    ll = UnitreeLowLevel(SPEC)
    ll.on_frame('arm_sdk', frame(q=0.4, kp=80.0, mode=0, weight=weight), 0.0)
    c = ll.command(0.01)
    assert ll.arm_sdk_weight(0.01) == expect
    ready = np.array(SPEC.ready_pose_rad)
    np.testing.assert_allclose(c.q_des, expect * 0.4 + (1 - expect) * ready)
    np.testing.assert_allclose(c.kp, expect * 80.0 + (1 - expect) * np.array(SPEC.kp))


def test_stale_stream_hands_back_and_bad_frames_are_refused():
    ll = UnitreeLowLevel(SPEC, UnitreeBridgeConfig(command_timeout_s=0.1))
    ll.on_frame('lowcmd', frame(q=0.5), 0.0)
    assert ll.command(0.05).q_des[0] == 0.5
    np.testing.assert_array_equal(ll.command(0.2).q_des, SPEC.ready_pose_rad)
    bad = frame(q=0.1)
    bad['q'][SLOTS[3]] = np.nan
    ll.on_frame('lowcmd', frame(q=0.2), 1.0)
    with pytest.raises(ValueError, match='non-finite q'):
        ll.on_frame('lowcmd', bad, 1.01)
    assert ll.command(1.02).q_des[3] == 0.2  # the previous good frame is kept
