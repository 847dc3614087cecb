"""The output directory of a run: one owner at a time, no earlier run lost, no stale leftovers.

Rules (see ``docs/checkpoints.md``):

* A run owns its directory through the lock file ``.lock``, which holds the owner's PID. A
  second run into the same directory is refused while the owner lives. The lock is an
  advisory ``flock`` held for the whole run, so the kernel releases it when the owner dies
  (``kill -9`` included): a lock file left by a dead process is stale and taken over.
  The lock file is opened without following a symbolic link, and anything at ``.lock`` that
  is not a regular file (a link, a FIFO, a device) is refused, never written through.
* A fresh run never replaces an earlier one: a directory that holds any name a run writes
  (:data:`RUN_FILES`, ``samples/``) is refused unless the run resumes that checkpoint or
  the caller asks to overwrite it (``--overwrite``), which deletes exactly those names first.
* Temporary files of writers that died are removed when a run takes the directory: only the
  exact names the project's writers give them (:func:`temporary_path` of a name a run
  writes, with the PID of a dead process), nothing else that merely looks alike.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import stat

try:
    import fcntl
except ImportError:                 # Windows: the PID in the lock file is all there is
    fcntl = None

LOCK = ".lock"
CHECKPOINT = "checkpoint.npz"
LOGS = ("log.jsonl", "log.csv")
#: the figures the trainers write after every epoch (``nnscratch.plots.*.epoch_figures`` and
#: ``Trainer.figures``)
FIGURES = ("loss.png", "curves.png", "samples.png", "reconstructions.png", "latent.png",
           "manifold.png")
#: every file of a run in its directory, which a fresh run would replace
RUN_FILES = (CHECKPOINT, *LOGS, *FIGURES)
#: the folder of the per-epoch grids ``samples/epoch_<n>.png``
SAMPLES = "samples"
EPOCH_SAMPLE = re.compile(r"^epoch_\d{3,}\.png$")
#: ``.<name>.<pid>.<8 hex>.tmp``: :func:`temporary_path`
_TMP_WITH_PID = re.compile(r"^\.(.+)\.(\d+)\.[0-9a-f]{8}\.tmp$")
#: what earlier versions left: the logs' ``log.*.tmp`` and the figures' ``<name>.<pid>.tmp``
_LOG_TMP = ("log.jsonl.tmp", "log.csv.tmp")
_OLD_FIGURE_TMP = re.compile(r"^(.+\.png)\.(\d+)\.tmp$")


class RunDirectoryError(ValueError):
    """The output directory is locked by another run, or holds a run that would be lost."""


def pid_alive(pid):
    """Whether a process ``pid`` exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # it exists, owned by someone else
        return True
    except OSError:
        return False
    return True


def temporary_path(path):
    """The name of the temporary file that becomes ``path`` (``.<name>.<pid>.<hex>.tmp``
    beside it): hidden, and carrying its writer's PID so that a later run can tell a dead
    writer's leftover from a live one's file."""
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def file_kind(path, follow=False):
    """None for a regular file or no file at ``path``; else what is there ("a directory",
    "a FIFO", "a symbolic link"...). ``follow``: judge what a symbolic link points to."""
    try:
        mode = (os.stat if follow else os.lstat)(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:    # a link that leads back to itself
            return "a loop of symbolic links"
        raise
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


def earlier_run(out_dir):
    """The path of the first file of a run found in ``out_dir`` (any name of
    :data:`RUN_FILES`, whatever it is, or anything in ``samples/``), else None. Empty logs
    are no run: an older nnscratch killed before its first epoch ended left them."""
    for name in RUN_FILES:
        path = os.path.join(out_dir, name)
        if os.path.lexists(path) and not _empty_log(path):
            return path
    samples = os.path.join(out_dir, SAMPLES)
    if os.path.lexists(samples) and file_kind(samples) != "a directory":
        return samples
    try:
        inside = sorted(os.listdir(samples))
    except OSError:
        return None
    return os.path.join(samples, inside[0]) if inside else None


def _empty_log(path):
    """A log with no record: an empty ``log.jsonl``, a ``log.csv`` of an empty header."""
    if os.path.basename(path) not in LOGS or file_kind(path) is not None:
        return False
    with open(path, "rb") as f:
        return f.read(2) in (b"", b"\n")


def check_fresh(out_dir, resumed_from=None, overwrite=False, resuming=False):
    """Refuse to start in ``out_dir`` if that would replace an earlier run.

    A run that resumes ``out_dir``'s own checkpoint is fine (``resuming`` without
    ``resumed_from``: the caller says so); a fresh run, or one resuming a checkpoint from
    elsewhere, is refused when ``out_dir`` holds a run, unless ``overwrite`` (then the
    earlier checkpoint and logs are deleted). Call while holding the lock.
    """
    found = earlier_run(out_dir)
    if found is None or (resuming and resumed_from is None):
        return
    own = os.path.join(out_dir, CHECKPOINT)
    if resumed_from is not None and os.path.isfile(own) and os.path.samefile(resumed_from, own):
        return
    if not overwrite:
        # a run killed between its first log line and its first checkpoint has nothing to
        # resume: then only the two other ways out are named
        resume = f"continue it with --resume {own}, " if os.path.isfile(own) else ""
        raise RunDirectoryError(
            f"{out_dir} holds an earlier run ({os.path.relpath(found, out_dir)}); {resume}"
            "choose a fresh --out, or pass --overwrite to replace it")
    remove_run_files(out_dir)


def remove_run_files(out_dir):
    """Delete the names a run writes in ``out_dir`` (a symbolic link is removed, never what
    it points to), and nothing else; a directory in their place is refused."""
    paths = [os.path.join(out_dir, name) for name in RUN_FILES]
    samples = os.path.join(out_dir, SAMPLES)
    if file_kind(samples) == "a directory":
        paths += [os.path.join(samples, name) for name in sorted(os.listdir(samples))
                  if EPOCH_SAMPLE.match(name)]
    elif os.path.lexists(samples):
        paths.append(samples)
    for path in paths:
        if file_kind(path) == "a directory":
            raise RunDirectoryError(f"--overwrite deletes files only, and {path} is a "
                                    "directory; move it away")
    for path in paths:
        if os.path.lexists(path):
            os.remove(path)
    if file_kind(samples) == "a directory":
        try:
            os.rmdir(samples)           # only when nothing of the user's is left in it
        except OSError:
            pass


def remove_stale_temporaries(out_dir, targets=None, owner=True):
    """Delete the temporary files of dead writers in ``out_dir``; returns their paths.

    Only exact names are removed: :func:`temporary_path` of a name in ``targets`` (default:
    a run's :data:`RUN_FILES`, and ``samples/epoch_<n>.png`` in ``samples/``) whose PID is
    not a live process, and the names older versions used (``<figure>.png.<pid>.tmp`` of a
    dead PID; with ``owner``, the caller holding the directory's lock, ``log.jsonl.tmp`` and
    ``log.csv.tmp``, which carry no PID). A user's ``.notes.123.cafe0000.tmp`` stays."""
    if targets is None:
        removed = _remove_stale(out_dir, RUN_FILES.__contains__, owner)
        samples = os.path.join(out_dir, SAMPLES)
        if file_kind(samples) == "a directory":
            removed += _remove_stale(samples, EPOCH_SAMPLE.match, False)
        return removed
    return _remove_stale(out_dir, set(targets).__contains__, owner)


def _remove_stale(directory, is_target, owner):
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(directory, name)
        stale = (owner and name in _LOG_TMP) or _of_dead_writer(name, is_target)
        if stale and file_kind(path) is None:
            try:
                os.remove(path)
                removed.append(path)
            except OSError:
                pass
    return removed


def _of_dead_writer(name, is_target):
    """Whether ``name`` is the temporary file of a target of ``is_target`` whose writer died."""
    match = _TMP_WITH_PID.match(name) or _OLD_FIGURE_TMP.match(name)
    return match is not None and bool(is_target(match.group(1))) and \
        not pid_alive(int(match.group(2)))


def check_unlocked(out_dir):
    """Raise :class:`RunDirectoryError` if a live run holds ``out_dir``'s lock (a check for
    an early, clear message; only holding :class:`RunLock` makes the directory yours)."""
    path = os.path.join(out_dir, LOCK)
    _refuse_odd_lock(path)
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | _NONBLOCK)
    except OSError:
        return
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except OSError:
                raise RunLock(out_dir)._busy(_read_pid(fd)) from None
        owner = _read_pid(fd)
        if owner and owner != os.getpid() and pid_alive(owner):
            raise RunLock(out_dir)._busy(owner)
    finally:
        os.close(fd)


class RunLock:
    """``with RunLock(out_dir):`` owns ``out_dir`` for the block (see the module docstring).

    ``stale``: the PID of a dead owner whose lock file was taken over, else None.
    """

    def __init__(self, out_dir):
        self.out_dir = str(out_dir)
        self.path = os.path.join(self.out_dir, LOCK)
        self.fd = None
        self.stale = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()

    def acquire(self):
        os.makedirs(self.out_dir, exist_ok=True)
        for _ in range(100):
            fd = self._open_locked()
            if fd is None:
                continue
            previous = _read_pid(fd)
            if previous not in (None, os.getpid()):
                self.stale = previous
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self.fd = fd
            return self
        raise RunDirectoryError(f"could not lock {self.out_dir}: its lock file {self.path} "
                                "keeps changing")

    def _open_locked(self):
        """A descriptor of the lock file, locked; None when the file was replaced meanwhile."""
        if fcntl is None:
            return self._open_exclusive()
        _refuse_odd_lock(self.path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _NONBLOCK, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):      # swapped in since the check
            os.close(fd)
            _refuse_odd_lock(self.path)
            raise RunDirectoryError(f"{self.path} is not a regular file; remove it")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = _read_pid(fd)
            os.close(fd)
            raise self._busy(owner) from None
        try:           # the previous owner may have unlinked the file between open and flock
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            return None
        return fd

    def _open_exclusive(self):
        _refuse_odd_lock(self.path)
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            try:
                with open(self.path) as f:
                    owner = int(f.read().strip() or 0)
            except (OSError, ValueError):
                owner = 0
            if owner and pid_alive(owner):
                raise self._busy(owner) from None
            self.stale = owner or None
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            return None

    def _busy(self, owner):
        who = f"process {owner}" if owner else "another process"
        return RunDirectoryError(f"{self.out_dir} is in use by {who} (lock file {self.path}); "
                                 "wait for that run to end or choose another --out")

    def release(self):
        if self.fd is None:
            return
        try:
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.remove(self.path)
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None


#: open the lock without following a symbolic link, and without waiting (a FIFO swapped in
#: after the check), where the system has the flags
_NOFOLLOW, _NONBLOCK = getattr(os, "O_NOFOLLOW", 0), getattr(os, "O_NONBLOCK", 0)


def _refuse_odd_lock(path):
    """A lock file is a regular file the run creates: a symbolic link there would make the
    run write its PID into the file it points to, and opening a FIFO waits forever."""
    kind = file_kind(path)
    if kind is not None:
        raise RunDirectoryError(f"{path} is {kind}, not a lock file that nnscratch wrote; "
                                "remove it (a run creates its own) or choose another --out")


def _read_pid(fd):
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
