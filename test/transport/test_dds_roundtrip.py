"""Every dds_msgs type survives a DDS round trip through a separate OS process.

The child (dds_echo_child.py, started with subprocess, not fork) echoes each sample back on
``<topic>_echo``. Both processes use loopback-only unicast discovery (dds_config) on a random
domain so that parallel runs do not cross-talk.
"""

import queue
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dds_echo_child import qos, topic_name  # noqa: E402
from dds_msg_random import first_difference, make_typestore, random_pair  # noqa: E402

from vidplan_ros.transport.dds_config import LOCALHOST_CYCLONEDDS_XML, localhost_env  # noqa: E402
from vidplan_ros.transport.dds_msgs import DDS_TYPES  # noqa: E402
from vidplan_ros.transport.dds_msgs.builtin_interfaces import Time  # noqa: E402
from vidplan_ros.transport.dds_msgs.sensor_msgs import Image  # noqa: E402
from vidplan_ros.transport.dds_msgs.std_msgs import Header  # noqa: E402

CHILD = Path(__file__).resolve().parent / 'dds_echo_child.py'
SAMPLES_PER_TYPE = 3
BIG_IMAGE = Image(header=Header(stamp=Time(sec=1, nanosec=2), frame_id='camera'), height=480,
                  width=640, encoding='rgb8', step=640 * 3,
                  data=bytes(range(256)) * (480 * 640 * 3 // 256))
OVERALL_TIMEOUT_S = 20.0


class Child:
    """The echo process plus a thread that collects its stdout lines."""

    def __init__(self, domain_id: int):
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(domain_id)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=localhost_env())
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        self.stderr_lines: list[str] = []
        threading.Thread(target=self._pump_stdout, daemon=True).start()
        threading.Thread(target=self._pump_stderr, daemon=True).start()

    def _pump_stdout(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def _pump_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    @property
    def stderr(self) -> str:
        return ''.join(self.stderr_lines[-40:])

    def wait_for(self, word: str, deadline: float) -> None:
        while word not in self.seen:
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the stderr pump finish
                pytest.fail(f'echo child exited with {self.proc.returncode} before {word}; '
                            f'stderr:\n{self.stderr}')
            try:
                self.seen.append(self.lines.get(timeout=max(0.0, min(0.1, deadline - now()))))
            except queue.Empty:
                if now() > deadline:
                    pytest.fail(f'echo child did not say {word} in time; said {self.seen[-5:]}')

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=3)
        except Exception:  # noqa: BLE001 - whatever happened, the child must go
            pass
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=5)


def now() -> float:
    return time.monotonic()


def test_every_type_round_trips_between_processes(monkeypatch):
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic

    deadline = now() + OVERALL_TIMEOUT_S
    domain_id = random.SystemRandom().randint(100, 200)
    # Read by Cyclone when this process first creates a participant on that (fresh) domain.
    monkeypatch.setenv('CYCLONEDDS_URI', LOCALHOST_CYCLONEDDS_XML)
    ts = make_typestore()
    sent = {name: [random_pair(ts, name, seed)[0] for seed in range(SAMPLES_PER_TYPE)]
            for name in sorted(DDS_TYPES)}
    sent['sensor_msgs/msg/Image'].append(BIG_IMAGE)  # ~1 MB: fragmented on the wire

    child = Child(domain_id)
    try:
        child.wait_for('READY', deadline)
        participant = DomainParticipant(domain_id)
        writers, readers = {}, {}
        for name, cls in DDS_TYPES.items():
            topic = topic_name(name)
            writers[name] = DataWriter(participant, Topic(participant, topic, cls), qos())
            readers[name] = DataReader(participant, Topic(participant, topic + '_echo', cls),
                                       qos())

        # Discovery in both directions: our endpoints matched, and the child says so too.
        while True:
            unmatched = sorted(
                [f'{n} (writer)' for n, w in writers.items()
                 if w.get_publication_matched_status().current_count == 0]
                + [f'{n} (echo reader)' for n, r in readers.items()
                   if r.get_subscription_matched_status().current_count == 0])
            if not unmatched:
                break
            if now() > deadline:
                pytest.fail(f'discovery timed out on domain {domain_id}; unmatched: {unmatched}')
            time.sleep(0.02)
        child.wait_for('MATCHED', deadline)

        for name, samples in sent.items():
            for sample in samples:
                writers[name].write(sample)

        received: dict[str, list] = {name: [] for name in DDS_TYPES}
        while any(len(received[n]) < len(sent[n]) for n in DDS_TYPES):
            got_any = False
            for name, reader in readers.items():
                for sample in reader.take(N=100):
                    if isinstance(sample, DDS_TYPES[name]):
                        received[name].append(sample)
                        got_any = True
            if now() > deadline:
                missing = {n: f'{len(r)}/{len(sent[n])}' for n, r in received.items()
                           if len(r) < len(sent[n])}
                pytest.fail(f'echoes missing after {OVERALL_TIMEOUT_S} s: {missing}; '
                            f'child stderr:\n{child.stderr}')
            if not got_any:
                time.sleep(0.01)
    finally:
        child.stop()

    for name in sorted(DDS_TYPES):
        assert len(received[name]) == len(sent[name]), f'{name}: extra echoes'
        for i, (out, back) in enumerate(zip(sent[name], received[name])):
            diff = first_difference(out, back)
            assert diff is None, f'{name} sample {i} changed in the round trip: {diff}'
            assert back.serialize() == out.serialize(), f'{name} sample {i}: bytes differ'
