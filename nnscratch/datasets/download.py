"""Download one file from a list of mirrors, verifying its SHA-256; never leave a partial file.

Each attempt streams into a temporary file in the destination directory (so the final rename
is atomic: same file system) and renames it into place only after the checksum matches. A
failed attempt (HTTP error, dropped connection, wrong checksum) deletes its temporary file and
moves on to the next mirror. Uses only ``urllib`` from the standard library.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Sequence, TextIO

from ..training.progress import ProgressBar

__all__ = ["DownloadError", "download_file", "sha256_of"]

_CHUNK = 1 << 16
_USER_AGENT = "nnscratch-datasets (Python urllib)"
#: seconds one download attempt may take in all (26 MB at 50 kB/s)
DEADLINE = 600.0


class DownloadError(OSError):
    """Every mirror failed. ``attempts`` lists ``(url, what happened)`` for each one."""

    def __init__(self, message: str, attempts: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.attempts = list(attempts)

    def __str__(self) -> str:  # OSError's own __str__ would prefix an errno
        return self.args[0]


class _AttemptFailed(Exception):
    """One mirror failed; the message says how (internal, turned into a DownloadError)."""


class _WriteFailed(Exception):
    """Writing the downloaded bytes here failed (a full disk): no mirror is to blame."""


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks so big files need little memory."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_file(
    urls: Sequence[str],
    dest: str | os.PathLike,
    sha256: str | None,
    *,
    progress: bool = True,
    timeout: float = 30.0,
    deadline: float = DEADLINE,
    stream: TextIO | None = None,
) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that delivers bytes with the right SHA-256.

    Args:
        urls: full URLs of the same file on different mirrors, tried in order.
        dest: where the verified file ends up (its directory is created if needed).
        sha256: expected hex digest. ``None`` refuses to download: unverified data could be
            anything, and a silent wrong dataset is worse than a clear error.
        progress: show a :class:`~nnscratch.training.progress.ProgressBar` (bytes) per attempt.
        timeout: seconds to wait for the server to connect or send data.
        deadline: seconds one attempt may take in all: a server that sends a byte now and
            then never times out a read, so the whole transfer has a limit too.
        stream: where the progress bar writes (default ``sys.stderr``).

    Returns:
        ``Path(dest)``.

    Raises:
        DownloadError: no mirror worked; the message lists each URL and what it answered.
    """
    dest = Path(dest)
    if not sha256:
        raise DownloadError(
            f"refusing to download {dest.name}: no published SHA-256 is known for it, so the "
            "download could not be verified"
        )
    if not urls:
        raise DownloadError(f"no mirrors to download {dest.name} from")
    dest.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_parts(dest)
    attempts: list[tuple[str, str]] = []
    for url in urls:
        try:
            _fetch_verified(url, dest, sha256.lower(), progress, (timeout, deadline), stream)
            return dest
        except _AttemptFailed as err:
            attempts.append((url, str(err)))
        except _WriteFailed as err:     # this machine's fault: another mirror cannot help
            raise DownloadError(f"could not write {dest.name} into {dest.parent} "
                                f"({err.__cause__.strerror}) while downloading it from {url}; "
                                "nothing was kept", [(url, str(err))]) from err
    lines = "\n".join(f"  {url}: {why}" for url, why in attempts)
    raise DownloadError(
        f"could not download {dest.name} into {dest.parent}; tried {len(attempts)} "
        f"mirror(s):\n{lines}",
        attempts,
    )


def _fetch_verified(url: str, dest: Path, sha256: str, progress: bool,
                    timeout: tuple[float, float], stream: TextIO | None) -> None:
    """One attempt: stream ``url`` to a temp file, check it, rename it to ``dest``. The
    temp file's name carries this process's ID, so that one left by a killed process can be
    told from one still being written (:func:`_remove_stale_parts`)."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.{os.getpid()}.",
                               suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            digest, size = _stream(url, out, dest.name, progress, timeout, stream)
        if digest != sha256:
            raise _AttemptFailed(
                f"SHA-256 mismatch: got {digest} for {size} bytes, expected {sha256} "
                "(corrupt or changed file; deleted)"
            )
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):  # any failure above: never leave a partial file behind
            os.remove(tmp)


def _stream(url: str, out: BinaryIO, label: str, progress: bool,
            timeout: tuple[float, float], stream: TextIO | None) -> tuple[str, int]:
    """Copy the body of ``url`` to ``out``; return its SHA-256 and size in bytes.

    ``timeout``: ``(seconds per read, seconds in all)``."""
    timeout, deadline = timeout
    give_up = time.monotonic() + deadline
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = _content_length(response)
            h, size = hashlib.sha256(), 0
            with ProgressBar(total, desc=label, unit="B", unit_scale=True, stream=stream,
                             disable=not progress) as bar:
                # read1: whatever has arrived, so that a slow trickle meets the deadline
                while chunk := response.read1(_CHUNK):
                    if time.monotonic() > give_up:
                        raise _AttemptFailed(f"gave up after the deadline of {deadline:g} s "
                                             f"({size} bytes received; deleted)")
                    try:
                        out.write(chunk)
                    except OSError as err:           # a full disk, not the mirror
                        raise _WriteFailed(f"{type(err).__name__}: {err}") from err
                    h.update(chunk)
                    size += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise _AttemptFailed(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise _AttemptFailed(f"cannot connect: {err.reason}") from err
    except (http.client.HTTPException, OSError, ValueError) as err:
        # OSError covers timeouts and resets; ValueError a malformed URL.
        raise _AttemptFailed(f"{type(err).__name__}: {err}") from err
    # http.client returns b"" instead of raising when a server closes early, so count.
    if total is not None and size != total:
        raise _AttemptFailed(
            f"connection closed after {size} of {total} bytes (incomplete download; deleted)"
        )
    return h.hexdigest(), size


def _remove_stale_parts(dest: Path) -> None:
    """Delete the temp files of downloads of ``dest`` whose process is gone (killed before
    its cleanup could run); those of a live process, a concurrent download, are kept."""
    from ..training.rundir import pid_alive
    for part in dest.parent.glob(f".{dest.name}.*.part"):
        pid = part.name[len(dest.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)):
            part.unlink(missing_ok=True)


def _content_length(response: http.client.HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.strip().isdigit() else None
