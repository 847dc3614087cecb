"""Read and write IDX files, the format of MNIST, Fashion-MNIST and KMNIST.

An IDX file is a header followed by the raw array in C order::

    bytes 0-1   0x00 0x00        (always zero)
    byte  2     type code         (0x08 = unsigned byte; the only type these datasets use)
    byte  3     ndim              (3 for images, 1 for labels)
    ndim x 4    dimension sizes   (big-endian uint32), e.g. 60000, 28, 28
    ...         prod(dims) items  (one byte each for 0x08)

Files are often gzipped; we detect gzip by its magic bytes ``1f 8b``, not by the file name,
because people rename and unpack files by hand.
"""

from __future__ import annotations

import gzip as _gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDXError", "read_idx", "write_idx"]

GZIP_MAGIC = b"\x1f\x8b"
UBYTE = 0x08
# Type codes of the IDX spec, so an unsupported file gets a precise message.
_TYPE_NAMES = {0x08: "unsigned byte", 0x09: "signed byte", 0x0B: "int16", 0x0C: "int32",
               0x0D: "float32", 0x0E: "float64"}
# The spec allows up to 255 dimensions; more than a few means the header is garbage.
_MAX_NDIM = 8


class IDXError(ValueError):
    """An IDX file is corrupt, truncated or of a type we do not read."""


def read_idx(path: str | os.PathLike, limit: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a ``uint8`` array of the stored shape.

    The header is read first; the data is then read (and decompressed) as a stream, only
    as far as needed, straight into the array: the first ``limit`` rows (items along the
    first axis) when ``limit`` is given, so a large file costs the memory of those rows
    only (a 200 MB image file read with ``limit=256`` costs 200 kB).

    Args:
        path: the file, e.g. ``train-images-idx3-ubyte.gz`` or its unpacked version.
        limit: read at most this many rows (None: all; trailing bytes are then refused).

    Returns:
        ``uint8`` array, e.g. shape ``(60000, 28, 28)`` for images or ``(60000,)`` for labels.

    Raises:
        IDXError: the file is not valid IDX (message names the file and the problem).
        FileNotFoundError: no such file.
        MemoryError: the rows wanted do not fit in memory (NumPy's message says the size).
    """
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        f = _gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw
        try:
            return _read_stream(f, str(path), limit)
        except (EOFError, OSError, zlib.error) as err:  # EOFError: gzip stream cut short
            if not gzipped or isinstance(err, FileNotFoundError):
                raise
            raise IDXError(
                f"{path}: not a valid gzip stream ({err}); the file is probably truncated or "
                "corrupt: delete it and download it again"
            ) from err


def _read_stream(f, name: str, limit: int | None) -> np.ndarray:
    """Header, then the rows wanted, from the open (decompressed) stream ``f``."""
    head = f.read(4)
    header = head + f.read(4 * head[3]) if len(head) == 4 else head
    dims, header_len = _parse_header(header, name)
    rows = dims[0] if limit is None else min(dims[0], int(limit))
    _check_room(f, name, rows * math.prod(dims[1:]), dims, header_len)
    # the array first, filled in place: no copy
    out = np.empty((rows, *dims[1:]), dtype=np.uint8)
    need, found = out.size, _fill(f, memoryview(out.reshape(-1)))
    if found < need:
        raise IDXError(
            f"{name}: expected {math.prod(dims)} bytes of data after the {header_len}-byte "
            f"header (shape {tuple(dims)}), found {found}: the file is truncated"
        )
    if rows == dims[0]:
        extra = 0
        while chunk := f.read(1 << 20):       # counted, not kept
            extra += len(chunk)
        if extra:
            raise IDXError(
                f"{name}: expected {need} bytes of data after the {header_len}-byte header "
                f"(shape {tuple(dims)}), found {need + extra}: the file has trailing bytes"
            )
    return out


def _check_room(f, name: str, need: int, dims, header_len: int) -> None:
    """Refuse, before allocating them, ``need`` bytes of data that a plain file does not
    hold (a header declaring 10^9 images in 16 bytes) or that the memory available now
    cannot (a gzip stream's size is known only once it is read)."""
    from ..training.checks import beyond_memory, format_bytes
    if not isinstance(f, _gzip.GzipFile):
        held = os.fstat(f.fileno()).st_size - header_len
        if held < need:
            raise IDXError(f"{name}: expected {need} bytes of data after the {header_len}-byte "
                           f"header (shape {tuple(dims)}), found {held}: the file is truncated")
        return
    short = beyond_memory(need)
    if short:
        raise IDXError(f"{name}: its header declares shape {tuple(dims)}: reading it needs "
                       f"{format_bytes(need)}, {short} (a smaller --limit reads less)")


def _fill(f, view, piece: int = 1 << 20) -> int:
    """Read from ``f`` into ``view`` until it is full or the stream ends; bytes read.
    ``piece`` bytes at a time: a gzip stream's ``readinto`` decompresses into a temporary
    buffer of the size asked for, which would double the memory of a whole read."""
    done = 0
    while done < len(view):
        n = f.readinto(view[done:done + piece])
        if not n:
            break
        done += n
    return done


def _parse_header(raw: bytes, name: str) -> tuple[tuple[int, ...], int]:
    """Check the magic number; return the dimensions and the header length in bytes."""
    if len(raw) < 4:
        raise IDXError(f"{name}: only {len(raw)} bytes, too short for the 4-byte IDX magic number")
    zero, type_code, ndim = raw[:2], raw[2], raw[3]
    if zero != b"\x00\x00":
        raise IDXError(
            f"{name}: bad magic number 0x{raw[:4].hex()}: an IDX file starts with two zero "
            "bytes (is this an IDX file?)"
        )
    if type_code != UBYTE:
        kind = _TYPE_NAMES.get(type_code, "unknown")
        raise IDXError(
            f"{name}: type code 0x{type_code:02X} ({kind}) is not supported: only unsigned-byte "
            "(0x08) IDX files, as used by MNIST, Fashion-MNIST and KMNIST, can be read"
        )
    if not 1 <= ndim <= _MAX_NDIM:
        raise IDXError(f"{name}: header says {ndim} dimensions, expected 1 to {_MAX_NDIM}")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IDXError(
            f"{name}: the header needs {header_len} bytes for {ndim} dimensions, the file has "
            f"{len(raw)}: the file is truncated"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header_len])
    return dims, header_len


def write_idx(path: str | os.PathLike, array: np.ndarray, gzip: bool = True) -> Path:
    """Write a ``uint8`` array as an IDX file (gzipped by default); returns the path.

    The gzip header gets ``mtime=0`` so the same array always gives the same bytes.
    """
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise TypeError(f"write_idx writes unsigned bytes only, got dtype {array.dtype}")
    if not 1 <= array.ndim <= _MAX_NDIM:
        raise ValueError(f"write_idx needs 1 to {_MAX_NDIM} dimensions, got {array.ndim}")
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array).tobytes()
    if gzip:
        data = _gzip.compress(data, mtime=0)
    path = Path(path)
    path.write_bytes(data)
    return path
