"""Checkpoints: one ``.npz`` file that holds everything needed to continue a run exactly.

Contents: every parameter and the optimizer state (``net/...``, ``opt/...``, from
:meth:`Trainer.state_dict`), the model's config (JSON), the backend's RNG state, and the
loop's position (``loop/...``: epoch, batch within the epoch, global step, the data
generator's state at the start of the epoch, the running sums of the epoch's metrics).

Written atomically: to a temporary file in the same directory, flushed and fsync'ed, then
renamed over the old file, so an interruption never leaves a half-written checkpoint.
Read with ``allow_pickle=False``: strings are stored as 0-d unicode arrays, never objects.
"""
from __future__ import annotations

import contextlib
import contextvars
import errno
import json
import math
import os
import shutil
import stat
import zipfile
import zlib

import numpy as np

from .checks import stored_parameters
from .rundir import file_kind, temporary_path
from .trainer import Trainer

FORMAT_VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or not what the caller expects."""


def save_checkpoint(path, trainer, loop_state):
    """Write ``trainer`` and the loop's ``loop_state`` (a JSON-able dict) to ``path``
    atomically (:func:`save_npz_atomic`), refusing a state that holds NaN or Inf."""
    state = dict(trainer.state_dict())
    bad = _non_finite(state)
    if bad:
        raise CheckpointError(f"refusing to save {os.fspath(path)!r}: {bad}; the last good "
                              "checkpoint is kept")
    try:        # strict JSON: a NaN sum would make a checkpoint that no load accepts
        state["loop/state"] = np.asarray(json.dumps(loop_state, allow_nan=False))
    except ValueError as err:
        raise CheckpointError(f"refusing to save {os.fspath(path)!r}: its loop state holds "
                              f"NaN or Inf ({err}); the last good checkpoint is kept") from err
    state["loop/format"] = np.asarray(FORMAT_VERSION)
    return save_npz_atomic(path, state)


def save_npz_atomic(path, arrays):
    """Write the dict of host ``arrays`` to the ``.npz`` file ``path`` atomically.

    Why: an interrupted ``np.savez`` leaves a truncated zip. The arrays go to a temporary
    file in the same directory (so the rename never crosses file systems), created with the
    permissions of any new file (the umask applies), flushed and fsync'ed, then renamed over
    ``path``; the temporary file is removed if anything, Ctrl-C included, interrupts.
    """
    size = sum(np.asarray(a).nbytes + NPZ_OVERHEAD for a in arrays.values())
    with atomic_file(path, size) as f:
        np.savez(f, **arrays)
    return path


#: bytes an ``.npz`` spends on each member besides its data (zip entry and directory
#: record, ``.npy`` header): about 250
NPZ_OVERHEAD = 256


@contextlib.contextmanager
def atomic_file(path, size=None):
    """An open binary file that becomes ``path`` only when the block ends without error: a
    temporary file in the same directory (so the rename never crosses file systems), created
    with the permissions of any new file, flushed and fsync'ed, renamed over ``path``, and the
    directory fsync'ed; removed if anything, Ctrl-C included, interrupts.

    Nothing is written through a symbolic link: the temporary file is created new (``x``
    mode: an existing name, a link included, is an error) and the rename replaces a link at
    ``path`` rather than its target. A directory, FIFO or device at ``path`` is refused
    before anything is written. Inside :func:`atomic_group`, the rename waits for the end
    of the group. ``size``, the bytes the file will take when known, goes into the message
    of a full disk (:func:`_space`)."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    kind = file_kind(path)
    if kind not in (None, "a symbolic link"):
        raise OSError(errno.EEXIST, f"could not write {path}: it is {kind}, not a file "
                                    "(nothing was written)")
    tmp = temporary_path(os.path.join(directory, os.path.basename(path)))
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        group = _GROUP.get()
        if group is not None:
            group.append((tmp, path))
            return
        os.replace(tmp, path)
    except BaseException as err:
        written = _size_of(tmp)
        _remove_quietly(tmp)
        if isinstance(err, OSError) and err.errno is not None:
            space = _space(err.errno, directory, size, written, _GROUP.get() or [])
            raise OSError(err.errno, f"could not write {path} ({err.strerror}{space}); the "
                                     "file there before, if any, is kept") from err
        raise
    _fsync_directory(directory)


#: errors of a write that found no room: a full disk, a full quota, the file size limit
NO_SPACE = tuple(getattr(errno, name) for name in ("ENOSPC", "EDQUOT", "EFBIG")
                 if hasattr(errno, name))


def _space(code, directory, size, written, pending):
    """``": needs about X; Y free in DIR"`` for an error ``code`` of :data:`NO_SPACE`
    (else ""): ``size`` the file's bytes (None: unknown, then more than the ``written``
    ones), plus the files of the same :func:`atomic_group` (``pending``), whose temporary
    files are removed with this one."""
    from .checks import format_bytes
    if code not in NO_SPACE:
        return ""
    held = sum(_size_of(tmp) for tmp, _ in pending)
    need = (f"about {format_bytes(size + held)}" if size is not None else
            f"more than {format_bytes(written + held)}")
    if code == errno.EFBIG:
        try:
            import resource
            limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
            limit = None if limit == resource.RLIM_INFINITY else limit
        except ImportError:             # Windows
            limit = None
        if limit is not None:
            return f": needs {need}; files are limited to {format_bytes(limit)} (ulimit -f)"
        return f": needs {need}, more than this file system's largest file"
    free = shutil.disk_usage(directory).free + held
    return f": needs {need}; {format_bytes(free)} free in {directory}"


def _size_of(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


#: the renames an :func:`atomic_group` holds back: ``[(temporary, path), ...]``, else None
_GROUP = contextvars.ContextVar("atomic_group", default=None)


@contextlib.contextmanager
def atomic_group():
    """``with atomic_group():`` every :func:`atomic_file` in the block is written whole and
    fsync'ed, but renamed over its path only when the whole block ends without error.

    Why: ``sample`` writes ``x.npy`` and ``x.png``; a full disk at the second must not leave
    the first already replaced. Renames need no space, so once every temporary file is
    written they all go through (within one file system, a rename fails only when the
    directory itself goes away). On any error every temporary file is removed and every
    earlier file is left as it was."""
    pending = []
    token = _GROUP.set(pending)
    try:
        yield
    except BaseException:
        for tmp, _ in pending:
            _remove_quietly(tmp)
        raise
    finally:
        _GROUP.reset(token)
    for i, (tmp, path) in enumerate(pending):
        try:
            os.replace(tmp, path)
        except BaseException:
            for later, _ in pending[i:]:
                _remove_quietly(later)
            raise
    for directory in {os.path.dirname(os.path.abspath(path)) for _, path in pending}:
        _fsync_directory(directory)


def copy_file_atomic(source, path):
    """Copy the file ``source`` to ``path`` through :func:`atomic_file` (never through a
    symbolic link at ``path``, never half a file)."""
    with open(source, "rb") as src, atomic_file(path) as f:
        shutil.copyfileobj(src, f)
    return path


def _remove_quietly(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def save_npy_rows(path, shape, blocks, dtype=np.float32):
    """Write the ``.npy`` file ``path`` of ``shape`` ``(n, ...)`` from ``blocks``, an iterable
    of arrays of consecutive rows, atomically and in bounded memory.

    Why: a result larger than memory cannot be built first and saved after, and writing
    ``path`` in place would replace a good file with a truncated one on a full disk. The
    header goes to a temporary file in the same directory whose space is then reserved (a
    full disk fails there, at once, with an ``OSError``), each block is written as it comes
    (written straight to the file rather than through a memory map: the map's pages would
    count in the resident memory, and a full disk shows up in a map as SIGBUS), the file is
    fsync'ed and renamed over ``path``; the temporary file is removed if anything, Ctrl-C
    included, interrupts.
    """
    path, dtype, shape = os.fspath(path), np.dtype(dtype), tuple(int(n) for n in shape)
    with atomic_file(path, NPZ_OVERHEAD + math.prod(shape) * dtype.itemsize) as f:
        np.lib.format.write_array_header_1_0(f, {
            "descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
            "shape": shape})
        offset = f.tell()
        _reserve(f, offset + math.prod(shape) * dtype.itemsize)
        rows = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            if block.shape[1:] != shape[1:] or rows + len(block) > shape[0]:
                raise ValueError(f"save_npy_rows: a block of shape {block.shape} does not "
                                 f"fit rows {rows}.. of {shape}")
            f.write(block.data)
            rows += len(block)
        if rows != shape[0]:
            raise ValueError(f"save_npy_rows: {rows} rows given for a shape {shape}")
    return path


def _reserve(f, size):
    """Give the open file ``f`` ``size`` bytes of real disk space (ENOSPC or EFBIG now)."""
    f.flush()
    if size <= f.tell():
        return
    try:
        os.posix_fallocate(f.fileno(), f.tell(), size - f.tell())
    except AttributeError:          # no posix_fallocate (macOS, Windows)
        f.truncate(size)
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
        f.truncate(size)            # a file system that cannot reserve: a sparse file


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading: every member checked before it is decompressed ----------------------------------
#: characters a text member (the config, the loop state, a generator's state) may hold
MAX_TEXT = 1 << 20
#: what each member must be: a JSON text, a count (0-d integer >= 0), or a floating array
TEXT, COUNT = "a 0-d text", "a 0-d integer"
#: the members every checkpoint has, read (small and checked) before the model is built
HEAD = {"config": TEXT, "loop/state": TEXT, "loop/format": COUNT}


def read_checkpoint(path):
    """The raw arrays of a checkpoint as a dict (host NumPy), validated.

    The zip's directory and each member's ``.npy`` header are read first (a few hundred
    bytes each): a member that is not an array, holds objects (pickle), or declares more
    bytes than its entry holds is refused, and so is a total larger than the memory
    available now, before anything is decompressed. :func:`load_checkpoint` checks more:
    each member against the model its config describes.
    """
    with _open_zip(path) as (path, zf):
        members = _directory(path, zf)
        _read_head(path, zf, members)
        state = _read_all(path, zf, members, "its arrays")
    _refuse_non_finite(path, state, "; resume from an earlier checkpoint or start again")
    return state


def read_head(path):
    """``(config, loop_state)`` of a checkpoint, type-checked, without reading its arrays."""
    with _open_zip(path) as (path, zf):
        return _read_head(path, zf, _directory(path, zf, only=HEAD))


def read_archive(path, head, rest, noun):
    """The arrays of an ``.npz`` file that is not a checkpoint (the classifier's cache),
    read as checkpoints are: ``head`` (``key -> TEXT, COUNT or shape``) first, then
    ``rest(head's arrays)``, the members that ``head`` implies. Every member's declared
    shape and dtype is checked against these before anything else is decompressed (an
    unknown or missing member is refused), their total (twice: the arrays and the model
    built from them) against the memory available now, and the floating ones for NaN and
    Inf. Errors are :class:`CheckpointError` naming the file as ``noun`` ("classifier
    file")."""
    token = _NOUN.set(noun)
    try:
        with _open_zip(path) as (path, zf):
            first = _directory(path, zf, only=head)
            for key, want in head.items():
                if key not in first:
                    raise CheckpointError(f"{_name(path)} lacks {key!r}: not written by "
                                          "nnscratch")
                _check_member(path, key, first[key], want)
            state = {key: _read_member(path, zf, first, key) for key in head}
            want = {**head, **rest(state)}
            members = _directory(path, zf, known=want.__contains__)
            for key, spec in want.items():
                if key not in members:
                    raise CheckpointError(f"{_name(path)} lacks {key!r}")
                _check_member(path, key, members[key], spec)
            state = _read_all(path, zf, members, "its arrays and the model built from them",
                              copies=2)
        _refuse_non_finite(path, state, "")
        return state
    finally:
        _NOUN.reset(token)


#: what the file being read is called in its errors ("checkpoint", "classifier file")
_NOUN = contextvars.ContextVar("npz_noun", default="checkpoint")


def _name(path):
    return f"{_NOUN.get()} {path!r}"


def _checked_file(path):
    """``path`` opened for reading, once it is known to be a regular file that starts
    like a zip. A directory, a FIFO or a device is named as such (never opened to wait:
    the open does not block, and the opened file's own type is checked too)."""
    kind = file_kind(path, follow=True)
    if kind == "a directory":
        raise CheckpointError(f"{_name(path)} is a directory; name the file in it, e.g. "
                              f"{os.path.join(path, 'checkpoint.npz')}")
    if kind is not None:
        raise CheckpointError(f"{_name(path)} is {kind}, not a file")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise CheckpointError(f"{_name(path)} does not exist") from None
    except OSError as err:
        raise CheckpointError(f"{_name(path)} cannot be read ({err.strerror})") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(fd).st_mode):      # swapped in since the check above
        f.close()
        kind = file_kind(path, follow=True) or "not a regular file"
        raise CheckpointError(f"{_name(path)} is {kind}, not a file")
    head = f.read(4)
    if head[:2] != ZIP_MAGIC[:2]:
        f.close()
        raise CheckpointError(f"{_name(path)} is corrupt or not an .npz file (it starts "
                              f"with bytes {head.hex() or 'none'}, not a zip header)")
    f.seek(0)
    return f


@contextlib.contextmanager
def _open_zip(path):
    """``(path, archive)`` of the file ``path`` (:func:`_checked_file`), with a cut or
    damaged member (bad CRC, short stream) named as corrupt."""
    path = os.fspath(path)
    f = _checked_file(path)
    with f:
        try:
            zf = zipfile.ZipFile(f)
        except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
            raise CheckpointError(f"{_name(path)} is corrupt or not an .npz file "
                                  f"({err})") from err
        with zf:
            try:
                yield path, zf
            except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as err:
                raise CheckpointError(f"{_name(path)} is corrupt ({err})") from err


#: the compression methods an ``.npz`` may use (``np.savez``, ``np.savez_compressed``, and
#: the others zipfile reads)
_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)


def _directory(path, zf, known=None, only=None):
    """``key -> (ZipInfo, shape, dtype)`` of every member (of those in ``only``, a set or a
    test of the name, when given), from the zip's directory and each member's ``.npy``
    header only. ``known(key)``, when given, is asked before any header is read: an unknown
    member is refused by its name alone."""
    members = {}
    for info in zf.infolist():
        key = info.filename[:-4]
        if not info.filename.endswith(".npy") or key in members:
            raise CheckpointError(f"{_name(path)} holds {info.filename!r}, which is not "
                                  "one array of a checkpoint: not written by nnscratch")
        if info.flag_bits & 1 or info.compress_type not in _METHODS:
            # zipfile would raise RuntimeError (a password) or NotImplementedError
            raise CheckpointError(f"{_name(path)}: {key!r} is "
                                  + ("encrypted" if info.flag_bits & 1 else
                                     f"compressed by method {info.compress_type}")
                                  + ", which nnscratch never writes")
        if known is not None and not known(key):
            raise CheckpointError(f"{_name(path)} holds an unknown member {key!r} "
                                  "(not part of the model its config describes)")
        if only is not None and not (only(key) if callable(only) else key in only):
            continue
        with zf.open(info) as f:
            shape, dtype, offset = _npy_header(path, key, f)
        if dtype.hasobject:
            raise CheckpointError(f"{_name(path)}: {key!r} holds Python objects "
                                  "(pickle), which nnscratch never loads")
        if info.file_size != offset + _nbytes(shape, dtype):
            raise CheckpointError(f"{_name(path)} is corrupt: {key!r} declares shape "
                                  f"{shape} of {dtype} ({_nbytes(shape, dtype)} bytes), its "
                                  f"entry holds {info.file_size - offset}")
        members[key] = (info, shape, dtype)
    return members


def _npy_header(path, key, f):
    """``(shape, dtype, header length)`` from the start of an ``.npy`` stream."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    try:
        version = np.lib.format.read_magic(f)
        if version not in readers:
            raise ValueError(f".npy format {version[0]}.{version[1]}")
        shape, _, dtype = readers[version](f)
    except (ValueError, TypeError, SyntaxError, EOFError) as err:
        raise CheckpointError(f"{_name(path)} is corrupt: the header of {key!r} is "
                              f"unreadable ({err})") from err
    return tuple(shape), dtype, f.tell()


def _nbytes(shape, dtype):
    return math.prod(shape) * dtype.itemsize


def _check_member(path, key, member, want):
    """``member`` is what ``want`` says: TEXT, COUNT, or a shape of floating values."""
    _, shape, dtype = member
    if want == TEXT:
        ok = shape == () and dtype.kind == "U" and dtype.itemsize <= 4 * MAX_TEXT
    elif want == COUNT:
        ok = shape == () and dtype.kind in "iu"
    else:
        ok = shape == tuple(want) and dtype.kind == "f"
        want = f"a floating-point array of shape {tuple(want)}"
    if not ok:
        raise CheckpointError(f"{_name(path)} does not fit the model its config "
                              f"describes: {key!r} has shape {shape} ({dtype}), not {want}")


def _read_member(path, zf, members, key):
    """Decompress one member (its header already checked)."""
    try:
        with zf.open(members[key][0]) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except (ValueError, EOFError, OSError, zipfile.BadZipFile, zlib.error) as err:
        raise CheckpointError(f"{_name(path)} is corrupt: {key!r} is unreadable "
                              f"({err})") from err


def _read_head(path, zf, members):
    """Check and read the format, the config and the loop state; returns the last two."""
    for key, want in HEAD.items():
        if key not in members:
            raise CheckpointError(f"{_name(path)} lacks {key!r}: not written by nnscratch")
        _check_member(path, key, members[key], want)
    found = int(_read_member(path, zf, members, "loop/format"))
    if found != FORMAT_VERSION:
        raise CheckpointError(f"{_name(path)} has format {found}, this nnscratch reads "
                              f"format {FORMAT_VERSION}")
    texts = {}
    for key, what in (("config", "config"), ("loop/state", "loop state")):
        try:
            texts[key] = json.loads(str(_read_member(path, zf, members, key)))
        except (json.JSONDecodeError, RecursionError) as err:   # nested 10^5 deep
            raise CheckpointError(f"{_name(path)} is corrupt: unreadable {what} "
                                  f"({type(err).__name__}: {err})") from err
        if not isinstance(texts[key], dict):
            raise CheckpointError(f"{_name(path)} is corrupt: {key!r} is JSON "
                                  f"{type(texts[key]).__name__}, not an object")
    _check_fields(path, "config's", texts["config"], CONFIG_FIELDS)
    _check_position(path, texts["loop/state"])
    return texts["config"], texts["loop/state"]


def _read_all(path, zf, members, what, copies=1):
    """Decompress every member once their total (``copies`` times: what is built from
    them too) is known to fit in the memory available now (MemAvailable)."""
    from .checks import beyond_memory, format_bytes
    need = copies * sum(_nbytes(shape, dtype) for _, shape, dtype in members.values())
    short = beyond_memory(need)
    if short:
        raise CheckpointError(f"{_name(path)}: {what} need {format_bytes(need)}, {short}")
    return {key: _read_member(path, zf, members, key) for key in members}


# -- the types of every field of the config and the loop state --------------------------------
def _integer(v, low):
    return isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _pair(test):
    return lambda v: isinstance(v, list) and len(v) == 2 and all(test(x) for x in v)


_POSITIVE_INT = (lambda v: _integer(v, 1), "an integer >= 1")
_COUNT = (lambda v: _integer(v, 0), "an integer >= 0")
_RATE = (lambda v: _number(v) and v > 0, "a finite number > 0")
_FRACTION = (lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)")
_TIME = (lambda v: _number(v) and v >= 0, "a finite number >= 0")
_TEXT = (lambda v: isinstance(v, str), "a string")
_FLAG = (lambda v: isinstance(v, bool), "true or false")

#: the type of each config key the models know (None: the preset's default); keys of other
#: models (registered by a user) are left to their trainer
CONFIG_FIELDS = {
    "kind": _TEXT, "preset": _TEXT, "recipe": _TEXT, "init": _TEXT, "loss": _TEXT,
    "G_norm": _TEXT, "output": _TEXT,
    "latent": _POSITIVE_INT, "data_dim": _POSITIVE_INT, "pack": _POSITIVE_INT,
    "k": _POSITIVE_INT, "iw_samples": _POSITIVE_INT, "batch_size": _POSITIVE_INT,
    "lr": _RATE, "lr_D": _RATE, "lr_G": _RATE,
    "binarize": _FLAG, "D_spectral": _FLAG,
    "ema": _FRACTION, "D_dropout": _FRACTION, "label_smoothing": _FRACTION,
    "G_alpha": (_number, "a finite number"), "D_alpha": (_number, "a finite number"),
    "betas": (_pair(_FRACTION[0]), "two numbers in [0, 1)"),
    "ttur": (_pair(_RATE[0]), "two finite numbers > 0"),
    "G_hidden": (lambda v: isinstance(v, list) and len(v) > 0 and all(_integer(x, 1) for x in v),
                 "a non-empty list of integers >= 1"),
}
CONFIG_FIELDS["D_hidden"] = CONFIG_FIELDS["G_hidden"]

#: the loop state's scalar fields besides its position (``epoch``, ``batch``, ``step``:
#: checked by :func:`_check_position`, where a null is refused too)
LOOP_FIELDS = {"seed": (lambda v: _integer(v, -2**63), "an integer"),
               "n_train": _POSITIVE_INT, "batch_size": _POSITIVE_INT,
               "elapsed": _TIME, "wall": _TIME}
#: the command line's options of the run, in ``loop/state``'s ``run``
RUN_FIELDS = {"dataset": _TEXT, "data_dir": _TEXT, "limit": _POSITIVE_INT,
              "test_limit": _POSITIVE_INT, "batch_size": _POSITIVE_INT, "epochs": _COUNT,
              "backend": (lambda v: v in ("numpy", "cupy"), "'numpy' or 'cupy'")}


def _check_fields(path, where, values, fields):
    """Each key of ``fields`` present in ``values`` is None or of its type."""
    for key, (test, what) in fields.items():
        value = values.get(key)
        if value is not None and not test(value):
            raise CheckpointError(f"{_name(path)} is corrupt: the {where} {key!r} is "
                                  f"{value!r}, not {what}")


def _check_position(path, loop_state):
    """Every field of the loop's state has its type (an edited ``"epoch": -3`` would train
    extra epochs, a NaN in ``sums`` would reach the log as a number)."""
    for key in ("epoch", "batch", "step"):
        value = loop_state.get(key, 0)
        if not _integer(value, 0):
            raise CheckpointError(f"{_name(path)} is corrupt: the loop position {key!r} "
                                  f"is {value!r}, not an integer >= 0")
    _check_fields(path, "loop state's", loop_state, LOOP_FIELDS)
    for key in ("sums", "run", "data_rng", "record"):
        if not isinstance(loop_state.get(key, {}), dict):
            raise CheckpointError(f"{_name(path)} is corrupt: the loop's {key!r} is "
                                  "not a JSON object")
    _check_fields(path, "run's", loop_state.get("run", {}), RUN_FIELDS)
    sums = loop_state.get("sums", {})
    _check_fields(path, "loop's sum", sums, {k: (_number, "a finite number") for k in sums})
    record = loop_state.get("record") or {}
    # the epoch's log line, appended to the log on resume: the loop stops rather than log a
    # NaN or Inf (held-out metrics included), so a record never holds one
    _check_fields(path, "loop's record", record, {k: (_number, "a finite number")
                                                  for k in record})
    if record and not _integer(record.get("epoch"), 1):
        raise CheckpointError(f"{_name(path)} is corrupt: the loop's 'record' has no "
                              "'epoch' >= 1")
    n_train, size = loop_state.get("n_train"), loop_state.get("batch_size")
    if n_train and size and loop_state.get("batch", 0) > n_train // size:
        raise CheckpointError(f"{_name(path)} is corrupt: batch {loop_state['batch']} "
                              f"of an epoch of {n_train // size} batches")
    if "data_rng" in loop_state:
        _check_generator(path, "the loop's 'data_rng'", loop_state["data_rng"], counter=False)


def _check_generator(path, what, state, counter=True):
    """``state`` is one a NumPy generator accepts (or, with ``counter``, the state of
    :class:`~nnscratch.counter_rng.CounterRNG`, which a CuPy run saves)."""
    try:
        if counter and isinstance(state, dict) and \
                state.get("bit_generator") == "nnscratch.CounterRNG":
            if not all(_integer(state.get(k), 0) for k in ("key", "counter")):
                raise ValueError("its key and counter must be integers >= 0")
        else:
            np.random.default_rng().bit_generator.state = state
    except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as err:
        raise CheckpointError(f"{_name(path)} is corrupt: {what} is not a generator's state "
                              f"({type(err).__name__}: {err})") from err


# -- rebuilding the trainer -------------------------------------------------------------------
def _refuse_non_finite(path, state, advice):
    bad = _non_finite(state)
    if bad:
        raise CheckpointError(f"{_name(path)} is unusable: {bad}{advice}")


def _non_finite(state):
    """What is wrong when a floating array of ``state`` holds NaN or Inf, else None."""
    for key, a in state.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc":
            finite = np.isfinite(a)
            if not finite.all():
                return f"{key!r} holds NaN or Inf ({a.size - int(finite.sum())} of {a.size} values)"
    return None


def load_checkpoint(path, backend=None, kind=None):
    """Rebuild the trainer from a checkpoint. Returns ``(trainer, loop_state)``.

    In this order, so that a hostile or damaged file costs neither memory nor a traceback:
    the zip's directory and the small members (format, config, loop state: every field
    type-checked); the parameters the config implies, against the values the file's
    ``net/`` members declare and the memory available now (before the model exists); the
    trainer, built by ``Trainer.from_config`` on ``backend`` (default: the current one);
    every member's declared shape and dtype against that model (unknown members, a missing
    Adam moment, a counter that is not a count: refused); their total against the memory
    still available; then the arrays. ``kind`` ("vae", "gan"), when given, must match the
    checkpoint's model. Every failure is a :class:`CheckpointError` that names the member
    or field.
    """
    _import_models()
    with _open_zip(path) as (path, zf):
        config, loop_state = _read_head(path, zf, _directory(path, zf, only=HEAD))
        # every parameter of the model is stored: the values the file declares bound it
        stored = sum(math.prod(shape) for _, shape, _ in _directory(
            path, zf, only=lambda key: key.startswith("net/")).values())
        with stored_parameters(stored, "the checkpoint"):
            trainer = _build(path, config, kind, backend)
        members = _directory(path, zf, known=_known(trainer))
        _check_members(path, trainer, members)
        # the model exists now (MemAvailable counts it): its state must fit beside it
        state = _read_all(path, zf, members, f"the model is built; its {len(members)} arrays")
    _refuse_non_finite(path, state, "; resume from an earlier checkpoint or start again")
    _check_counters(path, trainer, state)
    try:
        noise = json.loads(str(state["rng/backend"]))
    except (json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{_name(path)} is corrupt: unreadable 'rng/backend' "
                              f"({type(err).__name__}: {err})") from err
    _check_generator(path, "'rng/backend'", noise)
    try:
        trainer.load_state_dict(state)
    except (KeyError, ValueError, TypeError) as err:
        raise CheckpointError(f"{_name(path)} does not fit the model its config "
                              f"describes ({type(err).__name__}: {err})") from err
    return trainer, loop_state


def _build(path, config, kind, backend):
    """The trainer the config describes; the memory it needs is checked before it exists."""
    found = config.get("kind")
    if kind is not None and found != kind:
        raise CheckpointError(f"{_name(path)} holds a {found!r} model, not a {kind!r} one")
    if found not in Trainer.registry:
        raise CheckpointError(f"{_name(path)} holds a model of kind {found!r}, which this "
                              f"nnscratch does not know (known: "
                              f"{', '.join(sorted(Trainer.registry))})")
    try:
        return Trainer.from_config(config, backend=backend)
    except (ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{_name(path)} has a config that builds no model "
                              f"({type(err).__name__}: {err})") from err


def _expected(trainer):
    """``key -> TEXT, COUNT or a shape`` of every member a checkpoint of ``trainer`` may
    hold, except the optimizers' per-parameter slots (see :func:`_slots`)."""
    want = {**HEAD, "rng/backend": TEXT}
    for key, net in trainer.networks.items():
        for name, a in {**net.params, **net.buffers}.items():
            want[f"net/{key}/{name}"] = tuple(a.shape)
    for key in trainer.optimizers:
        want[f"opt/{key}/t"] = COUNT
    return want


def _slots(trainer):
    """``member -> (optimizer, parameter shape)`` of every optimizer slot (Adam's ``m`` and
    ``v`` of each parameter)."""
    out = {}
    for key, opt in trainer.optimizers.items():
        for name, p in opt.module.params.items():
            for slot in _slot_names(opt):
                out[f"opt/{key}/{slot}/{name}"] = (key, tuple(p.shape))
    return out


def _slot_names(opt):
    """The names of one parameter's state in ``opt`` (Adam: ``m``, ``v``), from the state
    of an empty array (nothing is allocated)."""
    return tuple(opt._init_state(opt.module.backend.zeros((0,))))


def _known(trainer):
    """Whether a member's name belongs to ``trainer``'s checkpoint: the expected members,
    the optimizer slots, and counters of the model's own (``<kind>/<name>``)."""
    names = set(_expected(trainer)) | set(_slots(trainer))
    return lambda key: key in names or key.startswith(f"{trainer.kind}/")


def _check_members(path, trainer, members):
    """Each member's declared shape and dtype against the model, before decompressing; an
    optimizer's state complete (every slot of every parameter) or, before its first
    step, absent."""
    want = _expected(trainer)
    for key, spec in want.items():
        if key in members:
            _check_member(path, key, members[key], spec)
        elif key.startswith("net/") or key == "rng/backend":
            raise CheckpointError(f"{_name(path)} does not fit the model its config "
                                  f"describes: it lacks {key!r}")
    for key, member in members.items():
        if key.startswith(f"{trainer.kind}/"):
            _check_member(path, key, member, COUNT)
    slots = _slots(trainer)
    for key, (_, shape) in slots.items():
        if key in members:
            _check_member(path, key, members[key], shape)
    for opt in trainer.optimizers:
        if f"opt/{opt}/t" not in members:
            raise CheckpointError(f"{_name(path)} is corrupt: it lacks the step count "
                                  f"'opt/{opt}/t' of the optimizer {opt!r}")
        every = [k for k, (o, _) in slots.items() if o == opt]
        missing = [k for k in every if k not in members]
        if missing and len(missing) < len(every):
            raise CheckpointError(f"{_name(path)} is corrupt: the optimizer {opt!r} "
                                  f"lacks {missing[0]!r}" + (f" and {len(missing) - 1} more"
                                                             if len(missing) > 1 else ""))


def _check_counters(path, trainer, state):
    """Counters are >= 0, and an optimizer with per-parameter state (Adam's moments) has
    it exactly when it has taken steps (a missing moment would fail at the first step)."""
    for key, a in state.items():
        if a.dtype.kind in "iu" and int(a) < 0:
            raise CheckpointError(f"{_name(path)} is corrupt: {key!r} is {int(a)}, not "
                                  "an integer >= 0")
        # a variance (batch norm's running one, Adam's v) is a mean of squares: a negative
        # one gives NaN samples (sqrt) or a step that reads as a divergence
        if _is_variance(key) and a.size and float(a.min()) < 0:
            raise CheckpointError(f"{_name(path)} is corrupt: {key!r} holds {float(a.min()):g}, "
                                  "and a variance is never negative")
    for key, opt in trainer.optimizers.items():
        t = int(state[f"opt/{key}/t"])
        if not _slot_names(opt):
            continue
        moments = any(k.startswith(f"opt/{key}/") and k != f"opt/{key}/t" for k in state)
        if moments != (t > 0):
            raise CheckpointError(f"{_name(path)} is corrupt: 'opt/{key}/t' is {t} but "
                                  f"the optimizer {'has' if moments else 'lacks'} its "
                                  f"{' and '.join(_slot_names(opt))}")


def _is_variance(key):
    """Whether the member ``key`` holds a variance: ``net/.../<layer>.running_var`` or an
    optimizer's second moment ``opt/<name>/v/<parameter>``."""
    parts = key.split("/")
    return (parts[0] == "net" and key.endswith(".running_var")) or \
        (parts[0] == "opt" and len(parts) > 3 and parts[2] == "v")


def _import_models():
    """Importing the model modules registers their trainers with :class:`Trainer`."""
    import importlib
    for name in ("nnscratch.models.vae", "nnscratch.models.gan"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
