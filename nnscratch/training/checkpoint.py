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
import zipfile

import numpy as np

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
    state["loop/state"] = np.asarray(json.dumps(loop_state))
    state["loop/format"] = np.asarray(FORMAT_VERSION)
    return save_npz_atomic(path, state)


def save_npz_atomic(path, arrays):
    """Write the dict of host ``arrays`` to the ``.npz`` file ``path`` atomically.

    Why: an interrupted ``np.savez`` leaves a truncated zip. The arrays go to a temporary
    file in the same directory (so the rename never crosses file systems), created with the
    permissions of any new file (the umask applies), flushed and fsync'ed, then renamed over
    ``path``; the temporary file is removed if anything, Ctrl-C included, interrupts.
    """
    with atomic_file(path) as f:
        np.savez(f, **arrays)
    return path


@contextlib.contextmanager
def atomic_file(path):
    """An open binary file that becomes ``path`` only when the block ends without error: a
    temporary file in the same directory (so the rename never crosses file systems), created
    with the permissions of any new file, flushed and fsync'ed, renamed over ``path``, and the
    directory fsync'ed; removed if anything, Ctrl-C included, interrupts.

    Nothing is written through a symbolic link: the temporary file is created new (``x``
    mode: an existing name, a link included, is an error) and the rename replaces a link at
    ``path`` rather than its target. A directory, FIFO or device at ``path`` is refused
    before anything is written. Inside :func:`atomic_group`, the rename waits for the end
    of the group."""
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
        _remove_quietly(tmp)
        if isinstance(err, OSError) and err.errno is not None:
            raise OSError(err.errno, f"could not write {path} ({err.strerror}); the file "
                                     "there before, if any, is kept") from err
        raise
    _fsync_directory(directory)


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
    with atomic_file(path) as f:
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


def read_checkpoint(path):
    """The raw arrays of a checkpoint as a dict (host NumPy), validated."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise CheckpointError(f"checkpoint {path!r} is a directory; name the file in it, e.g. "
                              f"{os.path.join(path, 'checkpoint.npz')}")
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path!r} does not exist")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != ZIP_MAGIC[:2]:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not an .npz file (it starts "
                              f"with bytes {head.hex() or 'none'}, not a zip header)")
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {k: data[k] for k in data.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise CheckpointError(f"checkpoint {path!r} is corrupt or not an .npz file "
                              f"({err})") from err
    for key in ("config", "loop/state", "loop/format"):
        if key not in state:
            raise CheckpointError(f"checkpoint {path!r} lacks {key!r}: not written by nnscratch")
    if int(state["loop/format"]) != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path!r} has format {int(state['loop/format'])}, "
                              f"this nnscratch reads format {FORMAT_VERSION}")
    bad = _non_finite(state)
    if bad:
        raise CheckpointError(f"checkpoint {path!r} is unusable: {bad}; resume from an earlier "
                              "checkpoint or start again")
    return state


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

    The trainer is built by ``Trainer.from_config`` from the stored config, on ``backend``
    (default: the current one), and then given every stored array. ``kind`` ("vae", "gan"),
    when given, must match the checkpoint's model. Raises :class:`CheckpointError` for a
    missing, corrupt or foreign file, a model of another kind, or arrays that do not fit the
    model the config describes.
    """
    _import_models()
    path = os.fspath(path)
    state = read_checkpoint(path)
    try:
        config = json.loads(str(state["config"]))
        loop_state = json.loads(str(state["loop/state"]))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"checkpoint {path!r} is corrupt: unreadable config ({err})") from err
    for key, value in (("config", config), ("loop/state", loop_state)):
        if not isinstance(value, dict):
            raise CheckpointError(f"checkpoint {path!r} is corrupt: {key!r} is JSON "
                                  f"{type(value).__name__}, not an object")
    _check_position(path, loop_state)
    found = config.get("kind")
    if kind is not None and found != kind:
        raise CheckpointError(f"checkpoint {path!r} holds a {found!r} model, not a {kind!r} one")
    if found not in Trainer.registry:
        raise CheckpointError(f"checkpoint {path!r} holds a model of kind {found!r}, which this "
                              f"nnscratch does not know (known: "
                              f"{', '.join(sorted(Trainer.registry))})")
    try:
        trainer = Trainer.from_config(config, backend=backend)
    except (ArithmeticError, KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path!r} has a config that builds no model "
                              f"({type(err).__name__}: {err})") from err
    try:
        _check_optimizer_shapes(trainer, state)
        trainer.load_state_dict(state)
    except (KeyError, ValueError) as err:
        raise CheckpointError(f"checkpoint {path!r} does not fit the model its config "
                              f"describes ({type(err).__name__}: {err})") from err
    return trainer, loop_state


def _check_position(path, loop_state):
    """The loop's position must be counts (an edited ``"epoch": -3`` would train extra epochs)."""
    for key in ("epoch", "batch", "step"):
        value = loop_state.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise CheckpointError(f"checkpoint {path!r} is corrupt: the loop position {key!r} "
                                  f"is {value!r}, not an integer >= 0")
    for key in ("sums", "run", "data_rng"):
        if not isinstance(loop_state.get(key, {}), dict):
            raise CheckpointError(f"checkpoint {path!r} is corrupt: the loop's {key!r} is "
                                  "not a JSON object")


def _check_optimizer_shapes(trainer, state):
    """Each stored optimizer slot ``opt/<opt>/<slot>/<param>`` has its parameter's shape."""
    for key, opt in trainer.optimizers.items():
        params = opt.module.params
        prefix = f"opt/{key}/"
        for name, a in state.items():
            if not name.startswith(prefix) or name.count("/") < 3:
                continue
            param = name[len(prefix):].split("/", 1)[1]
            if param in params and tuple(a.shape) != tuple(params[param].shape):
                raise ValueError(f"{name!r} has shape {tuple(a.shape)}, the parameter "
                                 f"{param!r} {tuple(params[param].shape)}")


def _import_models():
    """Importing the model modules registers their trainers with :class:`Trainer`."""
    import importlib
    for name in ("nnscratch.models.vae", "nnscratch.models.gan"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
