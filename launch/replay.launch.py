"""Replay a recorded bag into the four vidplan nodes; the executor runs in shadow mode.

    ros2 launch vidplan_ros replay.launch.py bag:=data/franka_push/push_0 model:=franka_push

`ros2 bag play` publishes /clock from the bag (--clock) and only the nodes' inputs: the model's
camera topics and /joint_states (`topics` to choose others), so recorded commands are never
replayed to a controller. Every node runs on the bag's time; the executor (shadow:=true)
computes its commands, limits and diagnostics but publishes nothing to the robot. The launch
ends when the bag has played (unless loop:=true). Bags from `vidplan record` / `vidplan
collect` or any ROS 2 bag (mcap or sqlite3) with the same topics work.
"""

import os
import sys

from launch import LaunchDescription
from launch.actions import ExecuteProcess, OpaqueFunction, Shutdown

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vidplan_launch_common import (COMMON_ARGUMENTS, as_bool, declare,  # noqa: E402
                                   model_cameras, pipeline_actions, resolve)

ARGUMENTS = {
    'bag': (None, 'the bag to play: a bag directory or an .mcap file (required)'),
    'rate': ('1.0', 'playback rate'),
    'loop': ('false', 'play the bag in a loop (the launch then runs until Ctrl-C)'),
    'start_offset': ('0.0', 'seconds into the bag to start at'),
    'topics': ('', "space-separated topics to play ('' = the model's cameras + /joint_states)"),
    'robot': ('', "executor's robot spec ('' = the model set's)"),
    'image_transport': ('raw', 'raw or compressed: what the bag holds for the cameras'),
}


def generate_launch_description():
    return LaunchDescription([*declare(COMMON_ARGUMENTS, ARGUMENTS),
                              OpaqueFunction(function=launch_setup)])


def play_command(a: dict) -> list:
    suffix = '/compressed' if a['image_transport'] == 'compressed' else ''
    topics = a['topics'].split() or [
        *[f'/cameras/{cam}/image_raw{suffix}' for cam in model_cameras(a['model'])],
        '/joint_states']
    cmd = ['ros2', 'bag', 'play', a['bag'], '--clock', '100', '--rate', a['rate'],
           '--topics', *topics]
    if float(a['start_offset']) > 0:
        cmd += ['--start-offset', a['start_offset']]
    if as_bool(a['loop']):
        cmd.append('--loop')
    return cmd


def launch_setup(context, *args, **kwargs):
    a = resolve(context, COMMON_ARGUMENTS, ARGUMENTS)
    play = ExecuteProcess(cmd=play_command(a), name='bag_play', output='screen',
                          on_exit=None if as_bool(a['loop']) else Shutdown(
                              reason='the bag has played'))
    return [play, *pipeline_actions(a, use_sim_time=True, robot=a['robot'], shadow=True)]
