"""Compiled CDR machines for fixed-size IDL structs (unitree_hg LowCmd / LowState).

cyclonedds serialises a struct through nested Python machines, one primitive at a time: a
LowCmd (35 MotorCmd) costs ~330 µs each way and a LowState (IMU + 35 MotorState) ~550 µs.
:class:`CompiledStructMachine` replaces the machine of the *whole* message with

* one precompiled ``struct.Struct`` for the complete payload, and
* two generated straight-line Python functions: ``flatten`` (message -> flat value list,
  attribute reads and tuple unpacking only) and ``build`` (flat value tuple -> message,
  ``object.__new__`` plus attribute stores, which leaves the same ``__dict__`` as the
  dataclass ``__init__`` at half the cost of calling it).

Layout. The tree is read off the stock machines (primitives, fixed arrays of primitives,
fixed octet arrays, nested final structs and fixed arrays of them; anything else is a
``TypeError`` at install time). Each primitive is aligned to ``min(size, align_max)``
relative to the payload start (``buffer._align_offset``, i.e. after the 4-byte
encapsulation header), exactly as ``Buffer.align`` does, so the format depends on where the
struct starts; one is compiled per (start offset mod 8, align_max) and cached. Structs have no
tail padding in CDR: e.g. ``LowState.motor_state[0].mode`` directly follows the int16
``imu_state.temperature`` at payload offset 70 (the C struct pads it to 72), and
``LowCmd.motor_cmd[0].q`` is at 4 after mode at 2 while later elements pad 3 bytes. XCDR2
arrays of structs carry a uint32 DHEADER with the byte length, written and checked here.

Values. Deserialised messages are real instances of the IDL classes (``list`` for arrays,
``bytes`` for octet arrays, Python ``float`` from float32 via ``struct``), so they compare
equal to what the stock machines produce, float32 rounding included.

Safety. Serialisation or deserialisation that fails on the fast path is retried with the stock
machines (which the compiled machine keeps as ``members_machines``), so errors read exactly as
before and any input the stock machines accept still works. At install time
:func:`use_compiled_machines` checks, for XCDR1/2 and both endiannesses, that a sample with
distinct values serialises to the identical bytes and decodes to the identical value as with
the stock machines, and raises ``RuntimeError`` otherwise.

This relies on ``cyclonedds.idl._support.Buffer`` internals (``_bytes``, ``_pos``, ``_endian``,
``_align_offset``, ``_align_max``); ``test/transport/test_unitree_fast.py`` guards them.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass, fields
from typing import Any, Callable, Optional

from cyclonedds.idl._machinery import (ArrayMachine, ByteArrayMachine, InstanceMachine,
                                       KeyEnabled, PlainCdrV2ArrayOfPrimitiveMachine,
                                       PrimitiveMachine, StructMachine)
from cyclonedds.idl._support import DeserializeKind, Endianness, SerializeKind

from vidplan_ros.transport.dds_msgs._octets import as_octets

_CODES = 'bBhHiIqQfd?'


# --- layout tree -----------------------------------------------------------------------------

@dataclass
class _Node:
    kind: str                 # 'scalar' | 'array' | 'octets' | 'struct' | 'structs'
    name: str                 # member name ('' for the root)
    code: str = ''            # struct code of one primitive item
    size: int = 0             # bytes of one item
    count: int = 1            # items (array length, octet count, number of structs)
    cls: Optional[type] = None
    children: tuple = ()      # for 'struct' / 'structs': the element's members
    dheader: bool = False     # 'structs' in XCDR2: preceded by a uint32 byte length
    n_values: int = 0         # flat values produced by one element


def _struct_members(cls: type, machine: Any) -> tuple:
    if not isinstance(machine, StructMachine) or type(machine) not in (StructMachine,
                                                                       CompiledStructMachine):
        raise TypeError(f'{cls.__name__}: {type(machine).__name__} is not a final struct machine')
    if machine.keylist:
        raise TypeError(f'{cls.__name__}: keyed structs are not supported')
    if (hasattr(cls, '__post_init__') or type(cls).__call__ is not type.__call__
            or '__slots__' in vars(cls)):
        raise TypeError(f'{cls.__name__}: custom construction, cannot build it field by field')
    init_names = [f.name for f in fields(cls) if f.init]
    if init_names != list(machine.members_machines):
        raise TypeError(f'{cls.__name__}: dataclass fields {init_names} do not match the IDL '
                        f'members {list(machine.members_machines)}')
    return tuple(_member_node(cls, name, m) for name, m in machine.members_machines.items())


def _nested_machine(sub: InstanceMachine) -> Any:
    idl = sub.type.__idl__
    idl.populate()
    return idl.v2_machine if sub.use_version_2 else idl.v1_machine


def _member_node(owner: type, name: str, m: Any) -> _Node:
    where = f'{owner.__name__}.{name}'
    if type(m) is PrimitiveMachine:
        node = _Node('scalar', name, m.code, m.size)
    elif type(m) is PlainCdrV2ArrayOfPrimitiveMachine:
        code = m.code[len(str(m.length)):]
        node = _Node('array', name, code, m.size // m.length, m.length)
        if struct.calcsize('<' + m.code) != m.size:
            raise TypeError(f'{where}: unexpected array machine {m.code!r}')
    elif isinstance(m, ByteArrayMachine):   # includes _octets.FixedOctetsMachine
        return _Node('octets', name, 's', 1, m.size, n_values=1)
    elif type(m) is InstanceMachine:
        children = _struct_members(m.type, _nested_machine(m))
        return _Node('struct', name, cls=m.type, children=children,
                     n_values=sum(_values_of(c) for c in children))
    elif (type(m) is ArrayMachine and type(m.submachine) is InstanceMachine):
        sub = m.submachine
        children = _struct_members(sub.type, _nested_machine(sub))
        return _Node('structs', name, count=m.size, cls=sub.type, children=children,
                     dheader=m.add_size_header, n_values=sum(_values_of(c) for c in children))
    else:
        raise TypeError(f'{where}: {type(m).__name__} is not supported by the compiled machine')
    if node.code not in _CODES or struct.calcsize('<' + node.code) != node.size:
        raise TypeError(f'{where}: unsupported primitive {node.code!r}')
    node.n_values = node.count
    return node


def _values_of(node: _Node) -> int:
    """Flat values a member produces (all elements, DHEADER included)."""
    if node.kind == 'structs':
        return node.count * node.n_values + (1 if node.dheader else 0)
    return node.n_values


# --- struct format (depends on the start offset) ---------------------------------------------

def _format(children: tuple, rel: int, align_max: int) -> tuple[str, dict[int, int]]:
    """(struct format without byte order, {id(node): DHEADER value}) starting at offset rel."""
    parts: list[str] = []
    dheaders: dict[int, int] = {}
    pos = rel

    def prim(code: str, size: int, count: int) -> None:
        nonlocal pos
        pad = -pos % min(size, align_max)
        if pad:
            parts.append(f'{pad}x')
        parts.append(f'{count}{code}' if count > 1 else code)
        pos += pad + size * count

    def walk(nodes: tuple) -> None:
        nonlocal pos
        for n in nodes:
            if n.kind in ('scalar', 'array'):
                prim(n.code, n.size, n.count)
            elif n.kind == 'octets':
                parts.append(f'{n.count}s')
                pos += n.count
            elif n.kind == 'struct':
                walk(n.children)
            else:
                if n.dheader:
                    prim('I', 4, 1)
                start = pos
                for _ in range(n.count):
                    walk(n.children)
                if n.dheader:
                    # One generated name per node: its value must not depend on the element.
                    if dheaders.setdefault(id(n), pos - start) != pos - start:
                        raise TypeError(f'{n.cls.__name__}[{n.count}]: DHEADER varies')

    walk(children)
    return ''.join(parts), dheaders


# --- code generation -------------------------------------------------------------------------

class _Gen:
    def __init__(self) -> None:
        self.n = 0
        self.lines: list[str] = []
        self.dheader_names: dict[int, str] = {}
        self.classes: dict[str, type] = {}

    def var(self, prefix: str) -> str:
        self.n += 1
        return f'{prefix}{self.n}'

    def dheader(self, node: _Node) -> str:
        return self.dheader_names.setdefault(id(node), f'D{len(self.dheader_names)}')

    def emit(self, indent: int, line: str) -> None:
        self.lines.append('    ' * indent + line)


def _gen_flatten(g: _Gen, children: tuple, obj: str, indent: int, items: list[str]) -> None:
    """Lines that append the flat values of struct ``obj`` (a local name) to ``out``."""
    for n in children:
        ref = f'{obj}.{n.name}'
        if n.kind == 'scalar':
            items.append(ref)
        elif n.kind == 'array':
            names = [g.var('a') for _ in range(n.count)]
            g.emit(indent, f'{", ".join(names)}, = {ref}')
            items.extend(names)
        elif n.kind == 'octets':
            v = g.var('b')
            g.emit(indent, f'{v} = octets({ref}, {n.count})')
            items.append(v)
        elif n.kind == 'struct':
            v = g.var('s')
            g.emit(indent, f'{v} = {ref}')
            _gen_flatten(g, n.children, v, indent, items)
        else:
            if n.dheader:
                items.append(g.dheader(n))
            _flush(g, indent, items)
            seq, elem = g.var('l'), g.var('e')
            g.emit(indent, f'{seq} = {ref}')
            g.emit(indent, f'if len({seq}) != {n.count}:')
            g.emit(indent + 1, f'raise ValueError("{n.cls.__name__}[{n.count}] needs {n.count} '
                               f'elements, got %d" % len({seq}))')
            g.emit(indent, f'for {elem} in {seq}:')
            inner: list[str] = []
            _gen_flatten(g, n.children, elem, indent + 1, inner)
            _flush(g, indent + 1, inner)


def _flush(g: _Gen, indent: int, items: list[str]) -> None:
    if items:
        g.emit(indent, f'extend(({", ".join(items)},))')
        items.clear()


class _Src:
    """Where generated build code reads flat values: ``values[i]`` or loop variable names."""

    def __init__(self, names: Optional[list[str]] = None, tuple_name: str = 'values'):
        self.names = names
        self.tuple_name = tuple_name

    def ref(self, i: int) -> str:
        return self.names[i] if self.names is not None else f'{self.tuple_name}[{i}]'

    def slice(self, a: int, b: int) -> str:
        if self.names is not None:
            return '(' + ''.join(f'{v}, ' for v in self.names[a:b]) + ')'
        return f'{self.tuple_name}[{a}:{b}]'


def _gen_build(g: _Gen, cls_name: str, children: tuple, src: _Src, idx: int,
               indent: int) -> tuple[str, int]:
    """Lines that build one struct from values at ``src`` from ``idx``: (its name, next idx)."""
    obj = g.var('o')
    g.emit(indent, f'{obj} = new({cls_name})')
    for n in children:
        target = f'{obj}.{n.name}'
        if n.kind in ('scalar', 'octets'):
            g.emit(indent, f'{target} = {src.ref(idx)}')
            idx += 1
        elif n.kind == 'array':
            g.emit(indent, f'{target} = [{", ".join(src.ref(idx + j) for j in range(n.count))}]')
            idx += n.count
        elif n.kind == 'struct':
            sub, idx = _gen_build(g, _cls_name(g, n.cls), n.children, src, idx, indent)
            g.emit(indent, f'{target} = {sub}')
        else:
            if n.dheader:
                d = g.dheader(n)
                g.emit(indent, f'if {src.ref(idx)} != {d}:')
                g.emit(indent + 1, f'raise ValueError("{n.cls.__name__}[{n.count}]: DHEADER %d '
                                   f'!= %d" % ({src.ref(idx)}, {d}))')
                idx += 1
            seq = g.var('l')
            names = [g.var('v') for _ in range(n.n_values)]
            end = idx + n.count * n.n_values
            g.emit(indent, f'{seq} = []')
            g.emit(indent, f'it = iter({src.slice(idx, end)})')
            g.emit(indent, f'for {", ".join(names)}, in zip({", ".join(["it"] * n.n_values)}):')
            sub, _ = _gen_build(g, _cls_name(g, n.cls), n.children, _Src(names), 0, indent + 1)
            g.emit(indent + 1, f'{seq}.append({sub})')
            g.emit(indent, f'{target} = {seq}')
            idx = end
    return obj, idx


def _cls_name(g: _Gen, cls: type) -> str:
    classes = g.classes
    for name, c in classes.items():
        if c is cls:
            return name
    name = f'C{len(classes)}'
    classes[name] = cls
    return name


def _octets(value: Any, n: int) -> bytes:
    if type(value) is not bytes:
        value = bytes(as_octets(value))
    if len(value) != n:
        raise ValueError(f'octet array needs exactly {n} bytes, got {len(value)}')
    return value


@dataclass
class _Compiled:
    le: struct.Struct
    be: struct.Struct
    flatten: Callable[[Any], list]
    build: Callable[[tuple], Any]


def _compile(cls: type, children: tuple, rel: int, align_max: int) -> _Compiled:
    fmt, dheaders = _format(children, rel, align_max)
    g = _Gen()
    g.emit(0, 'def flatten(o0):')
    g.emit(1, 'out = []')
    g.emit(1, 'extend = out.extend')
    items: list[str] = []
    _gen_flatten(g, children, 'o0', 1, items)
    _flush(g, 1, items)
    g.emit(1, 'return out')
    g.emit(0, '')
    g.emit(0, 'def build(values):')
    root, n = _gen_build(g, _cls_name(g, cls), children, _Src(), 0, 1)
    g.emit(1, f'return {root}')
    namespace: dict[str, Any] = {'new': object.__new__, 'octets': _octets, **g.classes}
    namespace.update({name: dheaders[key] for key, name in g.dheader_names.items()})
    source = '\n'.join(g.lines) + '\n'
    exec(compile(source, f'<compiled CDR machine for {cls.__name__}>', 'exec'), namespace)
    le, be = struct.Struct('<' + fmt), struct.Struct('>' + fmt)
    if n != sum(_values_of(c) for c in children) or n != len(le.unpack(bytes(le.size))):
        raise RuntimeError(f'{cls.__name__}: compiled layout is inconsistent')
    out = _Compiled(le, be, namespace['flatten'], namespace['build'])
    out.source = source  # type: ignore[attr-defined]  # for debugging
    return out


# --- the machine -----------------------------------------------------------------------------

class CompiledStructMachine(StructMachine):
    """Drop-in for the stock ``StructMachine`` of a fixed-size final struct (see module doc).

    ``members_machines`` and ``keylist`` stay the stock ones: key scanning, key machine ops,
    default values, non-DataSample (key) serialisation and the error fallback use them.
    """

    def __init__(self, stock: StructMachine, use_version_2: bool):
        super().__init__(stock.type, stock.members_machines, stock.keylist)
        self.use_version_2 = use_version_2
        self.children = _struct_members(stock.type, stock)
        self._compiled: dict[tuple[int, int], _Compiled] = {}
        self.fast_calls = 0       # counters for tests and diagnostics
        self.fallback_calls = 0

    def compiled(self, rel: int, align_max: int) -> _Compiled:
        key = (rel % 8, align_max)
        c = self._compiled.get(key)
        if c is None:
            c = self._compiled[key] = _compile(self.type, self.children, rel % 8, align_max)
        return c

    def serialize(self, buffer, value, serialize_kind=SerializeKind.DataSample,
                  key_enabled=KeyEnabled.InKeylist) -> None:
        if serialize_kind != SerializeKind.DataSample:
            return super().serialize(buffer, value, serialize_kind, key_enabled)
        pos = buffer._pos
        try:
            c = self._compiled.get(((pos - buffer._align_offset) % 8, buffer._align_max)) \
                or self.compiled(pos - buffer._align_offset, buffer._align_max)
            s = c.le if buffer._endian == '<' else c.be
            values = c.flatten(value)
            buffer.ensure_size(s.size)
            s.pack_into(buffer._bytes, pos, *values)
            buffer._pos = pos + s.size
        except Exception:
            buffer._pos = pos
            self.fallback_calls += 1
            return super().serialize(buffer, value, serialize_kind, key_enabled)
        self.fast_calls += 1

    def deserialize(self, buffer, deserialize_kind=DeserializeKind.DataSample,
                    key_enabled=KeyEnabled.InKeylist) -> Any:
        if deserialize_kind != DeserializeKind.DataSample:
            return super().deserialize(buffer, deserialize_kind, key_enabled)
        pos = buffer._pos
        try:
            c = self._compiled.get(((pos - buffer._align_offset) % 8, buffer._align_max)) \
                or self.compiled(pos - buffer._align_offset, buffer._align_max)
            s = c.le if buffer._endian == '<' else c.be
            out = c.build(s.unpack_from(buffer._bytes, pos))
            buffer._pos = pos + s.size
        except Exception:
            buffer._pos = pos
            self.fallback_calls += 1
            return super().deserialize(buffer, deserialize_kind, key_enabled)
        self.fast_calls += 1
        return out


# --- install + self-check --------------------------------------------------------------------

def use_compiled_machines(cls: type) -> None:
    """Install :class:`CompiledStructMachine` as the XCDR1 and XCDR2 machine of ``cls``."""
    idl = cls.__idl__
    idl.populate()
    stock = (idl.v1_machine, idl.v2_machine)
    if isinstance(stock[0], CompiledStructMachine) and isinstance(stock[1],
                                                                  CompiledStructMachine):
        return
    fast = (CompiledStructMachine(stock[0], False), CompiledStructMachine(stock[1], True))
    sample = sample_value(cls)
    for use_v2 in (False, True):
        for endianness in (Endianness.Little, Endianness.Big):
            ref = idl.serialize(sample, use_version_2=use_v2, endianness=endianness)
            ref_back = idl.deserialize(ref)
            _set(idl, fast)
            try:
                data = idl.serialize(sample, use_version_2=use_v2, endianness=endianness)
                back = idl.deserialize(ref)
            finally:
                _set(idl, stock)
            if data != ref or not same_value(back, ref_back) or not same_value(back, sample):
                raise RuntimeError(f'compiled CDR machine for {cls.__name__} disagrees with the '
                                   f'stock cyclonedds machine (xcdr{2 if use_v2 else 1}, '
                                   f'{endianness.name}); did cyclonedds change?')
    for m in fast:
        m.fast_calls = m.fallback_calls = 0
    _set(idl, fast)


def _set(idl: Any, machines: tuple) -> None:
    idl.v1_machine, idl.v2_machine = machines


def same_value(a: Any, b: Any) -> bool:
    """Deep equality of IDL values: same types, NaN equals NaN, -0.0 differs from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if hasattr(a, '__dataclass_fields__'):
        return type(a) is type(b) and all(same_value(getattr(a, f.name), getattr(b, f.name))
                                          for f in fields(a))
    return type(a) is type(b) and a == b


def sample_value(cls: type, _counter: Optional[list] = None) -> Any:
    """A deterministic instance of fixed-size struct ``cls`` with distinct field values."""
    counter = _counter if _counter is not None else [0]
    idl = cls.__idl__
    idl.populate()

    def prim(code: str, size: int) -> Any:
        counter[0] += 1
        k = counter[0]
        if code in 'fd':
            return float(k) + 0.25 * (k % 4) - (100.0 if k % 3 == 0 else 0.0)
        if code == '?':
            return bool(k % 2)
        bits = 8 * size - (1 if code.islower() else 0)
        return (k * 40503) % (1 << bits) - ((1 << bits) // 2 if code.islower() and k % 2 else 0)

    def value(n: _Node) -> Any:
        if n.kind == 'scalar':
            return prim(n.code, n.size)
        if n.kind == 'array':
            return [prim(n.code, n.size) for _ in range(n.count)]
        if n.kind == 'octets':
            counter[0] += 1
            return bytes((counter[0] + i) % 256 for i in range(n.count))
        if n.kind == 'struct':
            return make(n.cls, n.children)
        return [make(n.cls, n.children) for _ in range(n.count)]

    def make(c: type, children: tuple) -> Any:
        return c(**{n.name: value(n) for n in children})

    machine = idl.v1_machine
    return make(cls, _struct_members(cls, machine))


__all__ = ['CompiledStructMachine', 'same_value', 'sample_value', 'use_compiled_machines']
