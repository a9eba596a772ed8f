"""Echo child for test_rclpy_interop.py: an rclpy node (our rclpy backend, Fast DDS) that
reads `/vidplan_interop/<pkg>_<Name>` of every ROS type named on the command line and
publishes each sample back, as the rclpy message it received, on `<topic>_echo`.

Run as `python rclpy_echo_child.py TYPE...`; prints `READY` once its endpoints exist and
`ECHO <type>` per sample; exits 0 when stdin closes.
"""

import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vidplan_ros.transport import create_node  # noqa: E402


def topic(ros_type: str) -> str:
    pkg, _, name = ros_type.split('/')
    return f'/vidplan_interop/{pkg}_{name}'


def main(types: list[str]) -> int:
    node = create_node('vidplan_rclpy_echo', ['echo', '--backend', 'rclpy'])
    keep = []
    for ros_type in types:
        pub = node.create_publisher(ros_type, topic(ros_type) + '_echo')

        def echo(msg, pub=pub, ros_type=ros_type):
            pub.publish(msg)
            print(f'ECHO {ros_type} {type(msg).__module__}', flush=True)

        keep.append(node.create_subscription(ros_type, topic(ros_type), echo))
    print('READY', flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    node.spin(until=stop.is_set, timeout_s=120)
    node.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
