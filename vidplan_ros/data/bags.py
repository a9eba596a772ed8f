"""Episodes as ROS 2 bags (rosbag2, mcap storage) through the `rosbags` library. ROS-free.

A bag is a directory, exactly what `ros2 bag record -s mcap` writes and ROS 2 Humble and later
read (`ros2 bag info/play`, Foxglove)::

    <bag>/metadata.yaml       rosbag2 metadata, version 8 (the newest Humble parses)
    <bag>/<bag name>.mcap     messages (CDR), one mcap channel per (topic, type)
    <bag>/episode.json        sidecar: the episode metadata again, plus topic counts

Messages go in and come out as our Cyclone DDS message objects
(`vidplan_ros.transport.dds_msgs`), whose `serialize()` bytes are the ROS 2 CDR bytes. Message
definitions are those of the rosbags ROS 2 Humble typestore, plus `unitree_hg` from the .msg
text below. Episode metadata (robot, task, seed, success, policy, sim config ...) is stored in
the rosbag2 `custom_data` map as `vidplan.<key>: <JSON value>` (Humble's own tools ignore
`custom_data`; the sidecar keeps it visible there).

    with BagWriter('data/franka_push/push_3', metadata={'robot': 'franka_fr3'}) as bag:
        bag.write('/joint_states', t_ns, joint_state_msg)
        bag.update_metadata(success=True)
    with BagReader('data/franka_push/push_3') as bag:
        bag.topics            # {'/joint_states': TopicInfo('sensor_msgs/msg/JointState', 120)}
        for topic, ros_type, t_ns, msg in bag.messages(['/joint_states']): ...

A writer closes the bag properly also when the `with` body raises (Ctrl-C included): the bag then
opens and its metadata says `complete: false` and why. A recording that was killed outright
(no chance to close) leaves an mcap file without its summary; `recover_bag` copies every message
that made it to disk into a new, complete bag.
"""

from __future__ import annotations

import functools
import json
import mmap
import shutil
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple

from vidplan_ros.core.errors import VidplanError
from vidplan_ros.transport.dds_msgs import UnknownRosTypeError, dds_type
from vidplan_ros.transport.qos import QOS_DEFAULT, QoS

__all__ = ['BAG_VERSION', 'BagError', 'BagMessage', 'BagReader', 'BagWriter', 'EpisodeMeta',
           'METADATA_PREFIX', 'SIDECAR', 'TopicInfo', 'bag_typestore', 'recover_bag',
           'ros_type_of']

# rosbag2 metadata version 8: custom_data (v6), type hashes (v7), ros_distro (v8) and QoS
# profiles as a YAML string. Version 9 writes QoS as a list, which Humble cannot parse.
BAG_VERSION = 8
METADATA_PREFIX = 'vidplan.'
SIDECAR = 'episode.json'
COMPRESSIONS = ('', 'zstd')

# unitree_hg (unitree_sdk2 idl/hg), field for field as transport/dds_msgs/unitree_hg.py.
UNITREE_HG_MSGS = {
    'MotorCmd': """
uint8 mode
float32 q
float32 dq
float32 tau
float32 kp
float32 kd
uint32 reserve
""",
    'MotorState': """
uint8 mode
float32 q
float32 dq
float32 ddq
float32 tau_est
int16[2] temperature
float32 vol
uint32[2] sensor
uint32 motorstate
uint32[4] reserve
""",
    'IMUState': """
float32[4] quaternion
float32[3] gyroscope
float32[3] accelerometer
float32[3] rpy
int16 temperature
""",
    'LowCmd': """
uint8 mode_pr
uint8 mode_machine
MotorCmd[35] motor_cmd
uint32[4] reserve
uint32 crc
""",
    'LowState': """
uint32[2] version
uint8 mode_pr
uint8 mode_machine
uint32 tick
IMUState imu_state
MotorState[35] motor_state
uint8[40] wireless_remote
uint32[4] reserve
uint32 crc
""",
}


class BagError(VidplanError):
    """A bag that cannot be written or read as asked; the message says how to fix it."""


class TopicInfo(NamedTuple):
    ros_type: str
    count: int


class BagMessage(NamedTuple):
    """One message read from a bag; unpacks as `(topic, ros_type, t_ns, message)`."""

    topic: str
    ros_type: str
    t_ns: int
    message: Any


@functools.lru_cache(maxsize=1)
def bag_typestore() -> Any:
    """The rosbags ROS 2 Humble typestore with `unitree_hg` registered (built once)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types: dict[str, Any] = {}
    for name, text in UNITREE_HG_MSGS.items():
        types.update(get_types_from_msg(text.strip(), f'unitree_hg/msg/{name}'))
    store.register(types)
    return store


def ros_type_of(msg: Any) -> str:
    """`pkg/msg/Name` of a dds_msgs object (from its DDS type name `pkg::msg::dds_::Name_`)."""
    dds_name = getattr(type(msg), '__idl_typename__', '')
    parts = dds_name.split('::')
    if len(parts) != 4 or parts[2] != 'dds_' or not parts[3].endswith('_'):
        raise BagError(f'{type(msg).__name__} is not a ROS message of '
                       'vidplan_ros.transport.dds_msgs; build messages with dds_type(...) (or '
                       'node.msg_type on the dds backend), or pass raw CDR bytes and ros_type')
    return f'{parts[0]}/{parts[1]}/{parts[3][:-1]}'


@dataclass(frozen=True)
class EpisodeMeta:
    """What a bag of one episode says about itself (stored in custom_data and episode.json).

    `policy` names what produced the motion: a scripted expert (`expert:push`), a planner
    (`planner:vilp`) or `teleop`; `source` is `sim` or `robot`; `success` is None when unknown.
    """

    robot: str
    task: str
    seed: int | None = None
    success: bool | None = None
    policy: str = ''
    source: str = 'sim'
    sim_config: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.robot or not self.task:
            raise BagError(f'EpisodeMeta needs a robot and a task (got robot={self.robot!r}, '
                           f'task={self.task!r})')
        if self.seed is not None and (isinstance(self.seed, bool)
                                      or not isinstance(self.seed, int)):
            raise BagError(f'EpisodeMeta.seed = {self.seed!r}: an integer or None')
        if self.success is not None and not isinstance(self.success, bool):
            raise BagError(f'EpisodeMeta.success = {self.success!r}: true, false or None')

    def to_metadata(self) -> dict[str, Any]:
        meta = {'robot': self.robot, 'task': self.task, 'seed': self.seed,
                'success': self.success, 'policy': self.policy, 'source': self.source,
                'sim_config': dict(self.sim_config)}
        meta.update(self.extra)
        return meta

    @classmethod
    def from_metadata(cls, meta: Mapping[str, Any]) -> EpisodeMeta | None:
        """The episode described by bag metadata, or None when it names no robot and task."""
        if not meta.get('robot') or not meta.get('task'):
            return None
        own = ('robot', 'task', 'seed', 'success', 'policy', 'source', 'sim_config')
        return cls(robot=str(meta['robot']), task=str(meta['task']), seed=meta.get('seed'),
                   success=meta.get('success'), policy=str(meta.get('policy') or ''),
                   source=str(meta.get('source') or 'sim'),
                   sim_config=dict(meta.get('sim_config') or {}),
                   extra={k: v for k, v in meta.items() if k not in own})


def _rosbags_qos(qos: QoS) -> Any:
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)
    zero = QosTime(sec=0, nsec=0)  # unspecified (rmw default)
    return Qos(
        history=QosHistory.KEEP_LAST if qos.history == 'keep_last' else QosHistory.KEEP_ALL,
        depth=qos.depth,
        reliability=(QosReliability.RELIABLE if qos.reliability == 'reliable'
                     else QosReliability.BEST_EFFORT),
        durability=(QosDurability.TRANSIENT_LOCAL if qos.durability == 'transient_local'
                    else QosDurability.VOLATILE),
        deadline=zero, lifespan=zero, liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero, avoid_ros_namespace_conventions=False)


def _json_value(key: str, value: Any) -> str:
    try:
        return json.dumps(value, sort_keys=True, allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise BagError(f'bag metadata {key!r} = {value!r} cannot be stored ({exc}); use JSON '
                       'values: str, int, float (finite), bool, None, lists and maps') from None


def _json_default(value: Any) -> Any:
    if hasattr(value, 'tolist'):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    raise TypeError(f'{type(value).__name__} is not JSON')


def _looks_like_bag(path: Path) -> bool:
    return path.is_dir() and ((path / 'metadata.yaml').exists() or any(path.glob('*.mcap')))


class BagWriter:
    """Writes one rosbag2 bag (mcap storage) of dds_msgs messages; use as a context manager.

    Connections are added on first use per (topic, ROS type), offering `qos` (per topic, else
    `default_qos`) to `ros2 bag play`. `compression='zstd'` compresses each ~1 MiB mcap chunk
    (mcap's own chunk compression, as `compression: Zstd` in a rosbag2 mcap storage config;
    ROS 2 tools and Foxglove read it; sim images shrink ~20x). `t_ns` is the receive/log time
    of a message (sim time for simulated episodes); it orders playback. Metadata may be updated
    until the bag is closed.
    """

    def __init__(self, path: str | Path, metadata: Mapping[str, Any] | None = None,
                 overwrite: bool = False, default_qos: QoS = QOS_DEFAULT,
                 qos: Mapping[str, QoS] | None = None, compression: str = '') -> None:
        if compression not in COMPRESSIONS:
            raise BagError(f'compression {compression!r}: one of {list(COMPRESSIONS)} '
                           "('' = none)")
        self.path = Path(path)
        self.overwrite = overwrite
        self.compression = compression
        self.default_qos = default_qos
        self._qos = dict(qos or {})
        self._metadata: dict[str, Any] = {}
        self._writer: Any = None
        self._connections: dict[tuple[str, str], Any] = {}
        self._types: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._closed = False
        if metadata:
            self.update_metadata(**metadata)

    # --- life cycle -------------------------------------------------------------------------
    def open(self) -> BagWriter:
        from rosbags.rosbag2 import (CompressionFormat, CompressionMode, StoragePlugin, Writer,
                                     WriterError)

        if self._writer is not None or self._closed:
            raise BagError(f'{self.path}: a BagWriter opens once; make a new one per bag')
        if self.path.exists():
            if not self.overwrite:
                raise BagError(f'{self.path} exists already; choose another output directory, '
                               'or delete it (or pass overwrite=True / --overwrite)')
            if not (_looks_like_bag(self.path) or (self.path.is_dir()
                                                   and not any(self.path.iterdir()))):
                raise BagError(f'{self.path} exists and is not a bag; refusing to overwrite it '
                               '(choose another output directory)')
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        if self.compression == 'zstd':  # per mcap chunk: Humble, Foxglove and mcap tools read it
            writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        try:
            writer.open()
        except (WriterError, OSError) as exc:
            raise BagError(f'{self.path}: cannot create the bag ({exc}); check the output '
                           'directory is writable') from None
        self._writer = writer
        return self

    def __enter__(self) -> BagWriter:
        return self.open()

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc_type is not None and self._writer is not None:
            self._metadata['complete'] = False
            self._metadata['interrupted_by'] = exc_type.__name__
        self.close()

    def close(self) -> None:
        """Write the mcap summary, metadata.yaml and the sidecar. Safe to call twice."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._closed = True
        self._metadata.setdefault('complete', True)
        try:
            for key, value in self._metadata.items():
                writer.set_custom_data(METADATA_PREFIX + key, _json_value(key, value))
        finally:
            writer.close()  # always, so the bag opens even when metadata was bad
        sidecar = {'metadata': self._metadata, 'topics': {
            t: {'type': self._types[t], 'count': n} for t, n in sorted(self._counts.items())}}
        tmp = self.path / (SIDECAR + '.tmp')
        tmp.write_text(json.dumps(sidecar, indent=2, sort_keys=True, default=_json_default))
        tmp.replace(self.path / SIDECAR)

    # --- content ----------------------------------------------------------------------------
    def update_metadata(self, **values: Any) -> None:
        """Set episode metadata keys (JSON values), e.g. `success=True`."""
        for key, value in values.items():
            if not key or not isinstance(key, str):
                raise BagError(f'bag metadata key {key!r}: a non-empty string')
            _json_value(key, value)  # fail now, not at close
            self._metadata[key] = value

    @property
    def metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    @property
    def counts(self) -> dict[str, int]:
        """Messages written so far, per topic."""
        return dict(self._counts)

    def add_topic(self, topic: str, ros_type: str, qos: QoS | None = None) -> None:
        """Declare a topic up front (optional: `write` adds topics on first use)."""
        if qos is not None:
            self._qos[topic] = qos
        self._connection(topic, ros_type)

    def _connection(self, topic: str, ros_type: str) -> Any:
        conn = self._connections.get((topic, ros_type))
        if conn is not None:
            return conn
        self._writer_or_raise()
        if not topic.startswith('/'):
            raise BagError(f'topic {topic!r}: bags hold fully qualified names; use '
                           f'{"/" + topic!r}')
        if topic in self._types and self._types[topic] != ros_type:
            raise BagError(f'{topic}: already recorded as {self._types[topic]}, cannot also '
                           f'record {ros_type} on it; use another topic name')
        store = bag_typestore()
        if ros_type not in store.fielddefs:
            raise BagError(f'{topic}: no message definition for {ros_type} (known: the ROS 2 '
                           'Humble standard messages and unitree_hg)')
        qos = self._qos.get(topic, self.default_qos)
        conn = self._writer.add_connection(topic, ros_type, typestore=store,
                                           offered_qos_profiles=[_rosbags_qos(qos)])
        self._connections[(topic, ros_type)] = conn
        self._types[topic] = ros_type
        self._counts[topic] = 0
        return conn

    def write(self, topic: str, t_ns: int, msg: Any, ros_type: str | None = None) -> None:
        """Write `msg` (a dds_msgs object, or CDR bytes with `ros_type`) received at `t_ns`."""
        if isinstance(msg, (bytes, bytearray, memoryview)):
            if ros_type is None:
                raise BagError(f'{topic}: raw CDR bytes need ros_type=...')
            data = bytes(msg)
        else:
            ros_type = ros_type or ros_type_of(msg)
            data = msg.serialize()
        t_ns = int(t_ns)
        if t_ns < 0:
            raise BagError(f'{topic}: log time {t_ns} ns is negative; stamp with sim or wall '
                           'time in ns since its epoch')
        self._writer_or_raise()
        self._writer.write(self._connection(topic, ros_type), t_ns, data)
        self._counts[topic] += 1

    def _writer_or_raise(self) -> None:
        if self._writer is None:
            state = 'closed' if self._closed else 'not open'
            raise BagError(f'{self.path}: the bag is {state}; write inside '
                           '`with BagWriter(...) as bag:`')


def _decode_custom(custom: Mapping[str, str] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for key, raw in (custom or {}).items():
        if not key.startswith(METADATA_PREFIX):
            continue
        try:
            meta[key[len(METADATA_PREFIX):]] = json.loads(raw)
        except (TypeError, ValueError):
            meta[key[len(METADATA_PREFIX):]] = raw
    return meta


class BagReader:
    """Reads a rosbag2 bag (directory with metadata.yaml, or a single .mcap file).

    `messages()` yields `BagMessage(topic, ros_type, t_ns, message)` in log-time order with
    messages as dds_msgs objects (or CDR bytes with `raw=True`, for types we have no class for).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._reader: Any = None

    def _files(self) -> list[Path]:
        return sorted(self.path.glob('*.mcap')) if self.path.is_dir() else [self.path]

    def open(self) -> BagReader:
        from rosbags.rosbag2 import Reader, ReaderError

        if self._reader is not None:
            return self
        path = self.path
        if not path.exists():
            raise BagError(f'no bag at {path}; pass a bag directory (holding metadata.yaml and '
                           'an .mcap file) or an .mcap file')
        if path.is_dir() and not (path / 'metadata.yaml').exists():
            files = self._files()
            if not files:
                raise BagError(f'{path} is not a bag: it holds neither metadata.yaml nor an '
                               '.mcap file')
            raise BagError(f'{path}: metadata.yaml is missing, so the recording was not closed '
                           f'(killed?). Recover the messages in {files[0]} with `python -m '
                           f'vidplan_ros.data.bags recover {path} <new bag>`, or open the '
                           '.mcap file itself if it is complete')
        try:
            reader = Reader(path)
            reader.open()
        except (ReaderError, ValueError, KeyError, struct.error, EOFError) as exc:
            raise self._corrupt(exc) from None
        self._reader = reader
        return self

    def _corrupt(self, exc: BaseException) -> BagError:
        files = ', '.join(str(f) for f in self._files()) or str(self.path)
        return BagError(
            f'{files}: cannot read the bag ({exc}). The file is truncated or corrupt, usually '
            'because the recording was killed before the bag was closed. Recover the messages '
            f'that were written with `python -m vidplan_ros.data.bags recover {self.path} '
            '<new bag>`, or record the episode again')

    def __enter__(self) -> BagReader:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def _open_reader(self) -> Any:
        if self._reader is None:
            raise BagError(f'{self.path}: the bag is not open; use `with BagReader(...) as bag:`')
        return self._reader

    # --- what is in it ----------------------------------------------------------------------
    @property
    def topics(self) -> dict[str, TopicInfo]:
        """`{topic: TopicInfo(ros_type, count)}`, sorted by topic."""
        out: dict[str, TopicInfo] = {}
        for topic, info in sorted(self._open_reader().topics.items()):
            out[topic] = TopicInfo(info.msgtype or '', int(info.msgcount))
        return out

    @property
    def custom_data(self) -> dict[str, str]:
        """The raw rosbag2 custom_data map (all keys, ours and others')."""
        metadata = getattr(self._open_reader().storage, 'metadata', None)
        return dict(getattr(metadata, 'custom', None) or {})

    @property
    def metadata(self) -> dict[str, Any]:
        """Our metadata (custom_data `vidplan.*` keys, JSON-decoded); {} for foreign bags."""
        meta = _decode_custom(self.custom_data)
        if not meta and self.path.is_dir() and (self.path / SIDECAR).exists():
            try:
                meta = dict(json.loads((self.path / SIDECAR).read_text())['metadata'])
            except (ValueError, KeyError, TypeError):
                meta = {}
        return meta

    @property
    def episode(self) -> EpisodeMeta | None:
        return EpisodeMeta.from_metadata(self.metadata)

    @property
    def message_count(self) -> int:
        return int(self._open_reader().message_count)

    @property
    def start_ns(self) -> int:
        return int(self._open_reader().start_time) if self.message_count else 0

    @property
    def end_ns(self) -> int:
        """Log time of the last message (inclusive)."""
        return int(self._open_reader().end_time) - 1 if self.message_count else 0

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) * 1e-9 if self.message_count else 0.0

    def messages(self, topics: Iterable[str] | None = None, start_ns: int | None = None,
                 stop_ns: int | None = None, raw: bool = False) -> Iterator[BagMessage]:
        """Messages on `topics` (default all) with `start_ns <= t_ns < stop_ns`, in time order."""
        from rosbags.rosbag2 import ReaderError

        reader = self._open_reader()
        known = self.topics
        wanted = list(known) if topics is None else list(topics)
        missing = [t for t in wanted if t not in known]
        if missing:
            raise BagError(f'{self.path} has no topics {missing}; it has {list(known)}')
        classes: dict[str, type] = {}
        if not raw:
            for t in wanted:
                try:
                    classes[known[t].ros_type] = dds_type(known[t].ros_type)
                except UnknownRosTypeError:
                    raise BagError(f'{self.path}: topic {t} has type {known[t].ros_type}, which '
                                   'vidplan_ros cannot decode; leave it out (topics=[...]) or '
                                   'read raw CDR (raw=True)') from None
        conns = [c for c in reader.connections if c.topic in set(wanted)]
        if not conns:
            return
        try:
            for conn, t_ns, data in reader.messages(conns, start=start_ns, stop=stop_ns):
                payload = bytes(data) if raw else classes[conn.msgtype].deserialize(bytes(data))
                yield BagMessage(conn.topic, conn.msgtype, int(t_ns), payload)
        except (ReaderError, struct.error, EOFError) as exc:
            raise self._corrupt(exc) from None


# --- recovery of a bag whose recording was killed ------------------------------------------

_MCAP_MAGIC = b'\x89MCAP0\r\n'
_OP_SCHEMA, _OP_CHANNEL, _OP_MESSAGE, _OP_CHUNK = 0x03, 0x04, 0x05, 0x06


def _string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from('<I', buf, pos)
    return buf[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def _records(buf: bytes, pos: int = 0) -> Iterator[tuple[int, bytes]]:
    """(opcode, body) of the complete records in `buf` from `pos`; stops at a cut record."""
    while pos + 9 <= len(buf):
        op, length = struct.unpack_from('<BQ', buf, pos)
        if pos + 9 + length > len(buf):
            return
        yield op, buf[pos + 9:pos + 9 + length]
        pos += 9 + length


def _flat_records(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """Records of an mcap file with chunk contents inlined; ends at the first cut record."""
    for op, body in _records(buf, len(_MCAP_MAGIC)):
        if op != _OP_CHUNK:
            yield op, body
            continue
        pos = 8 + 8 + 8 + 4  # start, end, uncompressed size, crc
        compression, pos = _string(body, pos)
        (size,) = struct.unpack_from('<Q', body, pos)
        data = body[pos + 8:pos + 8 + size]
        if compression == 'zstd':
            if sys.version_info >= (3, 14):
                from compression import zstd
            else:
                from backports import zstd
            data = zstd.decompress(data)
        elif compression == 'lz4':
            from lz4.frame import decompress
            data = decompress(data)
        elif compression:
            raise BagError(f'mcap chunk compression {compression!r} is not supported')
        yield from _records(data)


def recover_bag(src: str | Path, dst: str | Path) -> dict[str, int]:
    """Copy every complete message of an unclosed or truncated mcap bag into a new bag `dst`.

    `src` is the bag directory or its .mcap file. Messages lost in the unwritten last chunk
    (up to ~1 MiB) cannot come back. The copy's metadata says `recovered_from`. Returns the
    message count per topic.
    """
    src = Path(src)
    files = sorted(src.glob('*.mcap')) if src.is_dir() else [src]
    if not files or not files[0].exists():
        raise BagError(f'no .mcap file at {src}; pass the bag directory or its .mcap file')
    with files[0].open('rb') as fh:
        if fh.read(len(_MCAP_MAGIC)) != _MCAP_MAGIC:
            raise BagError(f'{files[0]} is not an mcap file (bad magic); nothing to recover')
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _recover(src, files[0], buf, Path(dst))


def _recover(src: Path, file: Path, buf: Any, dst: Path) -> dict[str, int]:
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    meta: dict[str, Any] = {}
    if src.is_dir() and (src / SIDECAR).exists():
        try:
            meta = dict(json.loads((src / SIDECAR).read_text())['metadata'])
        except (ValueError, KeyError, TypeError):
            meta = {}
    meta.update(recovered_from=str(file), complete=False)
    with BagWriter(dst, metadata=meta) as out:
        for op, body in _flat_records(buf):
            if op == _OP_SCHEMA:
                (sid,) = struct.unpack_from('<H', body, 0)
                schemas[sid], _ = _string(body, 2)
            elif op == _OP_CHANNEL:
                cid, sid = struct.unpack_from('<HH', body, 0)
                topic, _ = _string(body, 4)
                if sid in schemas:
                    channels[cid] = (topic, schemas[sid])
            elif op == _OP_MESSAGE:
                cid, _seq, log_ns, _pub_ns = struct.unpack_from('<HIQQ', body, 0)
                if cid in channels:
                    topic, ros_type = channels[cid]
                    out.write(topic, log_ns, bytes(body[22:]), ros_type=ros_type)
        counts = out.counts
    if not sum(counts.values()):
        shutil.rmtree(dst)
        raise BagError(f'{file}: no complete message chunk made it to disk (the writer flushes '
                       'a chunk per ~1 MiB); nothing to recover')
    return counts


# --- command line: python -m vidplan_ros.data.bags info|recover ----------------------------

def _info(path: str) -> None:
    with BagReader(path) as bag:
        print(f'{bag.path}: {bag.message_count} messages, {bag.duration_s:.3f} s')
        for topic, info in bag.topics.items():
            print(f'  {topic:48s} {info.ros_type:36s} {info.count:7d}')
        for key, value in sorted(bag.metadata.items()):
            print(f'  {key}: {json.dumps(value, sort_keys=True)}')


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog='vidplan bag',
                                     description='Show or recover rosbag2 (mcap) bags.')
    sub = parser.add_subparsers(dest='command', required=True)
    sub.add_parser('info', help='topics, counts and metadata').add_argument('bag')
    rec = sub.add_parser('recover', help='copy the messages of a killed recording to a new bag')
    rec.add_argument('bag')
    rec.add_argument('out')
    args = parser.parse_args(argv)
    try:
        if args.command == 'info':
            _info(args.bag)
        else:
            counts = recover_bag(args.bag, args.out)
            print(f'recovered {sum(counts.values())} messages on {len(counts)} topics into '
                  f'{args.out}')
    except BagError as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
