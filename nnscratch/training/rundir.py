"""The output directory of a run: one owner at a time, no earlier run lost, no stale leftovers.

Rules (see ``docs/checkpoints.md``):

* A run owns its directory through the lock file ``.lock``, which holds the owner's PID. A
  second run into the same directory is refused while the owner lives. The lock is an
  advisory ``flock`` held for the whole run, so the kernel releases it when the owner dies
  (``kill -9`` included): a lock file left by a dead process is stale and taken over.
* A fresh run never replaces an earlier one: a directory that holds a checkpoint or a
  non-empty log is refused unless the run resumes that checkpoint or the caller asks to
  overwrite it (``--overwrite``), which deletes the earlier checkpoint and logs first.
* Temporary files of writers that died (``.<name>.<pid>.<hex>.tmp`` of a dead PID, and the
  logs' ``log.*.tmp``) are removed when a run takes the directory.
"""
from __future__ import annotations

import os
import re

try:
    import fcntl
except ImportError:                 # Windows: the PID in the lock file is all there is
    fcntl = None

LOCK = ".lock"
CHECKPOINT = "checkpoint.npz"
#: the files of a run that a fresh run would replace
RUN_FILES = (CHECKPOINT, "log.jsonl", "log.csv")
#: ``.<name>.<pid>.<hex>.tmp``, the temporary files of the atomic writers
_TMP_WITH_PID = re.compile(r"^\..+\.(\d+)\.[0-9a-f]+\.tmp$")
_LOG_TMP = ("log.jsonl.tmp", "log.csv.tmp")


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


def earlier_run(out_dir):
    """The path of the checkpoint or non-empty ``log.jsonl`` of a run in ``out_dir``, else
    None (a run killed before its first epoch ended leaves empty logs: nothing to lose)."""
    for name in (CHECKPOINT, "log.jsonl"):
        path = os.path.join(out_dir, name)
        if os.path.isfile(path) and (name == CHECKPOINT or os.path.getsize(path) > 0):
            return path
    return None


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
            f"{out_dir} holds an earlier run ({os.path.basename(found)}); {resume}choose a "
            f"fresh --out, or pass --overwrite to replace it")
    for name in RUN_FILES:
        path = os.path.join(out_dir, name)
        if os.path.isfile(path):
            os.remove(path)


def remove_stale_temporaries(out_dir, owner=True):
    """Delete the temporary files of dead writers in ``out_dir``; returns their names.

    ``owner``: the caller holds the directory's lock, so the logs' temporary files (which
    carry no PID) are stale too."""
    removed = []
    try:
        names = os.listdir(out_dir)
    except OSError:
        return removed
    for name in names:
        match = _TMP_WITH_PID.match(name)
        stale = (match is not None and not pid_alive(int(match.group(1)))) or \
            (owner and name in _LOG_TMP)
        if stale:
            try:
                os.remove(os.path.join(out_dir, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def check_unlocked(out_dir):
    """Raise :class:`RunDirectoryError` if a live run holds ``out_dir``'s lock (a check for
    an early, clear message; only holding :class:`RunLock` makes the directory yours)."""
    path = os.path.join(out_dir, LOCK)
    try:
        fd = os.open(path, os.O_RDONLY)
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
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
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


def _read_pid(fd):
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
