"""A GGUF's settings and tensor table read straight from the file, stepping over array values.

gguf-py's reader turns every element of every array field into numpy objects: for the default model that is the
151k-token vocabulary and its merges, ~15 s and ~0.5 GB per parse, while training and the adapter shape check need
only the scalar settings and where each tensor lies. Walking the same layout (GGUF v2/v3: header, key-value
fields, tensor infos, aligned data) with ``struct`` over a memory map takes a fraction of a second; tensor data
stays in the map until it is dequantised.
"""

from __future__ import annotations

import math
import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adpilot.errors import InputFileError

SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
"""GGUF value type → struct format; 8 is a string, 9 an array."""
STRING, ARRAY = 8, 9
DEFAULT_ALIGNMENT = 32


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor: ``tensor_type`` a ``gguf.GGMLQuantizationType``, ``shape`` in torch order (outermost first),
    ``data`` its bytes as a read-only uint8 view of the file."""

    name: str
    tensor_type: Any
    shape: tuple[int, ...]
    n_elements: int
    data: np.ndarray


class _Cursor:
    """A read position in the mapped file; running off its end is an :class:`InputFileError`, not a crash."""

    def __init__(self, buffer: mmap.mmap, path: Path) -> None:
        self.buffer, self.at, self.path = buffer, 0, path

    def unpack(self, fmt: str) -> Any:
        try:
            (value,) = struct.unpack_from(fmt, self.buffer, self.at)
        except struct.error:
            raise InputFileError(f"{self.path} ends inside its GGUF header (offset {self.at})") from None
        self.at += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        text = self.buffer[self.at:self.at + length].decode("utf-8", errors="replace")
        self.at += length
        return text

    def value(self, kind: int) -> Any:
        """A scalar or string; an array is stepped over (``None``)."""
        if kind == STRING:
            return self.string()
        if kind == ARRAY:
            item, count = self.unpack("<I"), self.unpack("<Q")
            if item == STRING:
                for _ in range(count):
                    length = self.unpack("<Q")  # not `self.at += self.unpack(…)`: that adds to the old offset
                    self.at += length
            elif item == ARRAY:
                for _ in range(count):
                    self.value(ARRAY)
            else:
                self.at += count * struct.calcsize(self._format(item))
            return None
        return self.unpack(self._format(kind))

    def _format(self, kind: int) -> str:
        if kind not in SCALARS:
            raise InputFileError(f"{self.path}: unknown GGUF value type {kind} at offset {self.at}")
        return SCALARS[kind]


def read_header(path: Path) -> tuple[dict[str, Any], list[GGUFTensor]]:
    """The scalar and string fields (arrays omitted) and the tensors of a GGUF file."""
    import gguf

    with path.open("rb") as handle:
        if (magic := handle.read(4)) != b"GGUF":
            raise InputFileError(f"{path} is not a GGUF file (it starts with {magic!r})")
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    cursor = _Cursor(buffer, path)
    cursor.at = 4
    version = cursor.unpack("<I")
    if version < 2:
        raise InputFileError(f"{path} is GGUF version {version}; versions 2 and 3 are read")
    n_tensors, n_fields = cursor.unpack("<Q"), cursor.unpack("<Q")
    fields = {}
    for _ in range(n_fields):
        key = cursor.string()
        if (value := cursor.value(cursor.unpack("<I"))) is not None:
            fields[key] = value
    table = []
    for _ in range(n_tensors):
        name = cursor.string()
        dims = [cursor.unpack("<Q") for _ in range(cursor.unpack("<I"))]
        code = cursor.unpack("<I")
        try:
            kind = gguf.GGMLQuantizationType(code)
        except ValueError:
            raise InputFileError(f"{path}: tensor {name} has unknown ggml type {code}") from None
        table.append((name, dims, kind, cursor.unpack("<Q")))
    alignment = int(fields.get("general.alignment", DEFAULT_ALIGNMENT))
    start = -(-cursor.at // alignment) * alignment
    tensors = []
    for name, dims, kind, offset in table:
        block, size = gguf.GGML_QUANT_SIZES[kind]
        count = math.prod(dims)
        n_bytes = count // block * size
        if start + offset + n_bytes > len(buffer):
            raise InputFileError(f"{path}: tensor {name} runs past the end of the file (truncated?)")
        data = np.frombuffer(buffer, dtype=np.uint8, count=n_bytes, offset=start + offset)
        tensors.append(GGUFTensor(name, kind, tuple(int(d) for d in reversed(dims)), count, data))
    return fields, tensors
