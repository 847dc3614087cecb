"""Ctrl-C while the ``nnscratch`` command starts: one line and status 130, never a traceback.

Imported first by the package. When this process is the command (the console script
``nnscratch`` or ``python -m nnscratch``), SIGINT is answered by one line and status 130
until :func:`nnscratch.cli.main` calls :func:`release`; from there on a Ctrl-C is Python's
``KeyboardInterrupt``, which ``main`` turns into its own line (or, during training, into a
checkpoint). Without this, a Ctrl-C while NumPy and the package import raises
``KeyboardInterrupt`` wherever the import happens to be and prints its traceback.

Importing nnscratch from a program of one's own changes nothing. What no package can
change: a Ctrl-C in the first tens of milliseconds of the interpreter, before this module
runs (the process then ends by the signal, status 130 in the shell and no message, or with
the interpreter's own traceback).
"""
# _signal, the C module: already in the interpreter, where ``import signal`` spends
# milliseconds building enums (long enough for a Ctrl-C to land in it)
import _signal as signal
import os
import sys

MESSAGE = b"\ninterrupted while starting (nothing was done)\n"


def started_as_command():
    """Whether this process is the ``nnscratch`` command, judged from its command line
    (``sys.argv[0]`` is ``-m`` while ``python -m`` imports the package)."""
    argv0 = sys.argv[0] if sys.argv else ""
    if os.path.basename(argv0) in ("nnscratch", "nnscratch.exe", "nnscratch-script.py"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    return argv0 == "-m" and any(a == "-m" and b == "nnscratch" for a, b in zip(orig, orig[1:]))


def _interrupted(signum, frame):
    # os.write and os._exit: nothing of the interrupted import runs again (no half-made
    # module is used, no atexit hook of a library caught half-way)
    os.write(2, MESSAGE)
    os._exit(130)


def install():
    """Answer SIGINT with :data:`MESSAGE` and status 130 (when Python's default handler is
    in place: an ignored SIGINT, e.g. under ``nohup``, stays ignored)."""
    try:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, _interrupted)
    except ValueError:              # not the main thread: signals are not ours to set
        pass


def release():
    """Give SIGINT back to Python (``KeyboardInterrupt``), if :func:`install` took it."""
    try:
        if signal.getsignal(signal.SIGINT) is _interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
    except ValueError:
        pass


if started_as_command():
    install()
