"""Fast octet (uint8) fields for the IDL structs: one copy of raw bytes, numpy accepted.

cyclonedds serialises ``sequence<uint8>`` one int at a time into a list and copies
``uint8[N]`` with ``bytearray`` slicing, which rejects numpy arrays. The machines here write
the identical CDR (sequence: uint32 length + octets; array: N octets) from bytes, bytearray,
memoryview, numpy uint8 arrays of any shape (C order) or lists of ints, and read ``bytes``.
Fields stay declared as ``sequence[uint8]`` / ``array[uint8, N]`` so XTypes type objects
(needed to create a Topic) still build; cyclonedds cannot build one for a ``bytes`` field.
"""

from typing import Any

from cyclonedds.idl._machinery import (ByteArrayMachine, BytesMachine, KeyEnabled,
                                       PlainCdrV2SequenceOfPrimitiveMachine)
from cyclonedds.idl._support import SerializeKind


def as_octets(value: Any) -> Any:
    """``value`` as a bytes-like object of octets (no copy for contiguous buffers)."""
    if isinstance(value, (bytes, bytearray)):
        return value
    try:
        view = memoryview(value)
    except TypeError:
        return bytes(value)  # list/iterable of ints in 0..255
    if view.itemsize != 1:
        raise TypeError(f'octet data must have 1-byte items, got format {view.format!r}')
    return view.cast('B') if view.c_contiguous else view.tobytes()


class OctetsMachine(BytesMachine):
    """``sequence<uint8>`` <-> ``bytes``."""

    def serialize(self, buffer, value, serialize_kind=SerializeKind.DataSample,
                  key_enabled=KeyEnabled.InKeylist) -> None:
        value = as_octets(value)
        buffer.align(4)
        buffer.write('I', 4, len(value))
        buffer.write_bytes(value)


class FixedOctetsMachine(ByteArrayMachine):
    """``uint8[N]`` <-> ``bytes`` of length N."""

    def serialize(self, buffer, value, serialize_kind=SerializeKind.DataSample,
                  key_enabled=KeyEnabled.InKeylist) -> None:
        value = as_octets(value)
        if len(value) != self.size:
            raise ValueError(f'octet array needs exactly {self.size} bytes, got {len(value)}')
        buffer.write_bytes(value)

    def default_initialize(self) -> bytes:
        return bytes(self.size)


def use_octet_machines(cls: type, *names: str) -> None:
    """Switch the uint8 sequence/array members ``names`` of IDL struct ``cls`` to the above."""
    idl = cls.__idl__
    idl.populate()
    for machine in (idl.v1_machine, idl.v2_machine):
        for name in names:
            old = machine.members_machines[name]
            if isinstance(old, PlainCdrV2SequenceOfPrimitiveMachine) and old.size == 1:
                machine.members_machines[name] = OctetsMachine()
            elif type(old) is ByteArrayMachine:
                machine.members_machines[name] = FixedOctetsMachine(old.size)
            elif not isinstance(old, (OctetsMachine, FixedOctetsMachine)):
                raise TypeError(f'{cls.__name__}.{name} is not a uint8 sequence or array')
