"""Isaac Sim's Franka publishes panda_* joint states; the bundled model sets are FR3's. The
perception node (its own process) reads those states by franka_fr3's joint_aliases and hands the
pipeline fr3_* joints (issue 11, defect 5; the executor side is in test_executor_node.py)."""

import numpy as np

from vidplan_ros.core.robot_spec import load_robot_spec
from vidplan_ros.transport import create_node
from vidplan_ros.transport import convert as cv

from test.nodes.stage_helpers import (FRANKA_REACH_CAMERAS, Latest, NodeProcess,
                                     heldout_observation, spin_until)

MODULE = 'vidplan_ros.nodes.perception_node'


def test_perception_reads_isaac_panda_joint_states_for_an_fr3_model_set(tmp_path):
    fr3, panda = load_robot_spec('franka_fr3'), load_robot_spec('franka_panda')
    proc = NodeProcess(MODULE, tmp_path / 'perception.log', 'rate_hz:=20.0',
                       name='perception_isaac')
    node = create_node('isaac_stand_in')
    t = 'sensor_msgs/msg/'
    try:
        images = {cam: node.create_publisher(t + 'Image', f'/cameras/{cam}/image_raw')
                  for cam in FRANKA_REACH_CAMERAS}
        states = node.create_publisher(t + 'JointState', '/joint_states')
        joints = Latest()
        node.create_subscription(t + 'JointState', '/vidplan/latent/joint_states', joints)
        spin_until(node, lambda: all(p.get_subscription_count() for p in images.values())
                   and node.count_publishers('/vidplan/latent/joint_states'), 60, proc)
        frames, q = heldout_observation(0)
        # Isaac's names: panda_* arm joints, in its own order, and the fingers
        names = list(panda.joint_names)[::-1] + ['panda_finger_joint1', 'panda_finger_joint2']
        pos = np.concatenate([q[::-1], [0.04, 0.04]])

        def observe() -> int:
            stamp = node.now_ns()
            for dt_ns in (-10_000_000, 10_000_000):
                states.publish(cv.joint_state_msg(node.msg_type, stamp + dt_ns, names, pos))
            node.spin(timeout_s=0.05)
            for cam, pixels in frames.items():
                images[cam].publish(cv.image_msg(node.msg_type, stamp, cam, pixels, 'rgb8'))
            return stamp

        sent = [observe()]
        for _ in range(30):                      # an observation every 2 s until one is used
            spin_until(node, lambda: sent[-1] in joints.by_stamp or
                       node.now_ns() - sent[-1] > 2e9, 10, proc)
            if sent[-1] in joints.by_stamp:
                break
            sent.append(observe())
        stamp = sent[-1]
        assert stamp in joints.by_stamp, proc.output()[-2000:]
        js = joints.by_stamp[stamp]
        assert list(js.name) == list(fr3.joint_names)
        np.testing.assert_allclose(js.position, q, atol=1e-9)
    finally:
        proc.stop()
        node.shutdown()
