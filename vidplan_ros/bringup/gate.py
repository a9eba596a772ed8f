"""Start a command once given topics have publishers: `vidplan launch` starts the sim this way.

    python -m vidplan_ros.bringup.gate --wait sensor_msgs/msg/Image:/vidplan/latent ... \\
        --timeout 300 -- vidplan_sim --ros-args ...

Each `--wait TYPE:TOPIC` is satisfied when at least one writer of that topic is matched (the
pipeline nodes create their publishers once their models are loaded), so the sim's first episode
does not run while the planner is still loading. The command then replaces this process (same
pid: the supervisor's signals reach it). After `--timeout` without every writer, exits 3 naming
the missing topics.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from vidplan_ros.transport import QOS_SENSOR_DATA, create_node


def parse_wait(text: str) -> tuple[str, str]:
    ros_type, sep, topic = text.partition(':')
    if not sep or ros_type.count('/') != 2 or not topic.startswith('/'):
        raise argparse.ArgumentTypeError(f'{text!r}: expected pkg/msg/Type:/topic')
    return ros_type, topic


def wait_for_writers(waits: list[tuple[str, str]], timeout_s: float,
                     argv: list[str] | None = None) -> list[str]:
    """Block until every (type, topic) has a matched writer; the topics still missing."""
    node = create_node('vidplan_launch_gate', argv or [])
    try:
        # A subscription per topic: the dds backend counts the writers its readers match.
        for ros_type, topic in waits:
            node.create_subscription(ros_type, topic, lambda _m: None, QOS_SENSOR_DATA)
        deadline = time.monotonic() + timeout_s
        missing = [t for _, t in waits if node.count_publishers(t) < 1]
        while missing and node.ok() and time.monotonic() < deadline:
            node.spin_once(0.2)
            missing = [t for _, t in waits if node.count_publishers(t) < 1]
        if not node.ok():  # SIGINT/SIGTERM on rclpy: the context is shut down, no exception
            raise KeyboardInterrupt
        return missing
    finally:
        node.shutdown()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if '--' not in argv:
        print('launch_gate: usage: --wait TYPE:TOPIC ... [--timeout S] -- COMMAND ...',
              file=sys.stderr)
        return 2
    split = argv.index('--')
    parser = argparse.ArgumentParser(prog='launch_gate')
    parser.add_argument('--wait', type=parse_wait, action='append', default=[])
    parser.add_argument('--timeout', type=float, default=300.0)
    parser.add_argument('--label', default='the command')
    args = parser.parse_args(argv[:split])
    command = argv[split + 1:]
    if not command:
        parser.error('no command after --')
    t0 = time.monotonic()
    topics = ', '.join(t for _, t in args.wait)
    if args.wait:
        print(f'waiting for publishers on {topics} before starting {args.label}', flush=True)
    try:
        missing = wait_for_writers(args.wait, args.timeout)
    except KeyboardInterrupt:
        return 0
    if missing:
        print(f'launch_gate: no publisher on {", ".join(missing)} after {args.timeout:g} s: '
              'the node that publishes it did not come up (see its log above)', flush=True)
        return 3
    if args.wait:
        print(f'all publishers up after {time.monotonic() - t0:.1f} s; starting {args.label}',
              flush=True)
    os.execvp(command[0], command)
    return 0  # not reached


if __name__ == '__main__':
    sys.exit(main())
