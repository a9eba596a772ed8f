"""Echo child for test_dds_roundtrip.py (run as ``python dds_echo_child.py DOMAIN [TYPES...]``).

For every ROS type (default: all of DDS_TYPES) it reads ``rt/vidplan_test/<topic>`` and
writes each sample back unchanged on ``rt/vidplan_test/<topic>_echo``. It deserialises with
our dds_msgs classes and serialises again, so the round trip covers both directions.
Protocol on stdout: ``READY`` once entities exist, ``MATCHED`` once every reader and echo
writer has a peer, ``ECHO <topic>`` per sample. Exits when stdin closes or after 60 s.
"""

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from cyclonedds.core import Policy, Qos, ReadCondition, SampleState, WaitSet  # noqa: E402
from cyclonedds.domain import DomainParticipant  # noqa: E402
from cyclonedds.pub import DataWriter  # noqa: E402
from cyclonedds.sub import DataReader  # noqa: E402
from cyclonedds.topic import Topic  # noqa: E402
from cyclonedds.util import duration  # noqa: E402

from vidplan_ros.transport.dds_msgs import DDS_TYPES, dds_type  # noqa: E402

MAX_LIFETIME_S = 60.0


def topic_name(ros_type: str) -> str:
    """'sensor_msgs/msg/Image' -> 'rt/vidplan_test/sensor_msgs_Image'."""
    pkg, _, name = ros_type.split('/')
    return f'rt/vidplan_test/{pkg}_{name}'


def qos() -> Qos:
    return Qos(Policy.Reliability.Reliable(duration(seconds=1)), Policy.History.KeepLast(10),
               Policy.Durability.Volatile)


def say(line: str) -> None:
    print(line, flush=True)


def main(argv: list[str]) -> int:
    domain_id = int(argv[1])
    ros_types = argv[2:] or sorted(DDS_TYPES)
    participant = DomainParticipant(domain_id)
    pairs = []
    waitset = WaitSet(participant)
    for ros_type in ros_types:
        cls = dds_type(ros_type)
        name = topic_name(ros_type)
        reader = DataReader(participant, Topic(participant, name, cls), qos())
        writer = DataWriter(participant, Topic(participant, name + '_echo', cls), qos())
        waitset.attach(ReadCondition(reader, SampleState.NotRead))
        pairs.append((name, reader, writer))
    say('READY')

    stdin_closed = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        stdin_closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    deadline = time.monotonic() + MAX_LIFETIME_S
    matched = False
    while not stdin_closed.is_set() and time.monotonic() < deadline:
        if not matched:
            matched = all(r.get_subscription_matched_status().current_count > 0
                          and w.get_publication_matched_status().current_count > 0
                          for _, r, w in pairs)
            if matched:
                say('MATCHED')
        waitset.wait(duration(milliseconds=20))
        for name, reader, writer in pairs:
            for sample in reader.take(N=100):
                if isinstance(sample, reader.topic.data_type):
                    writer.write(sample)
                    say(f'ECHO {name}')
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv))
