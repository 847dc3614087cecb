r"""The grader: runs the student's functions on float64 inputs and says which are right.

What "right" means, numerically (``docs/workbook.md`` says the same):

* on every input of :mod:`nnscratch.workbook.exercises` (random arrays of several shapes and
  the edge cases), each returned array has the shape of the library's and agrees with it to
  a relative error (eq. gradcheck-3) of at most :data:`COMPARE_TOL` = 1e-9: float64
  rounding of a different order of operations is about 1e-16, a real mistake about 1e-1;
* a gradient also matches the central differences (eq. gradcheck-1) of the library's
  forward to :data:`nnscratch.gradcheck.TOLERANCE` = 1e-7 (the library's own threshold);
* no overflow, division by zero or invalid operation (NumPy's warnings are errors here),
  which is what "stable" means for the sigmoid, the cross-entropy and the log-mean-exp.

The student's code runs in this process, one module at a time, imported from its file
(nothing is left in ``sys.modules``), with a time limit per exercise: an infinite loop is
stopped and reported (a ``SIGALRM`` timer in the main thread; elsewhere the exercise runs
in a daemon thread that is abandoned when its time is up).
"""
from __future__ import annotations

import importlib.util
import os
import signal
import threading
import traceback
from dataclasses import dataclass, field

import numpy as np

from ..gradcheck import TOLERANCE, relative_error
from . import reference
from .exercises import BY_NAME, EXERCISES, TOPICS, cite

#: Largest relative error (eq. gradcheck-3) between the student's value and the library's.
COMPARE_TOL = 1e-9
#: Seconds an exercise may run (all of its inputs together) before it is stopped.
TIME_LIMIT = 10.0


class WorkbookError(ValueError):
    """A directory that is not a workbook, or an exercise name that does not exist."""


class ExerciseTimeout(BaseException):
    """Raised inside the student's code when its time is up (a BaseException, so that an
    ``except Exception`` in the student's loop cannot swallow it)."""


@dataclass
class Result:
    """One exercise's grade: ``status`` "not started", "wrong", "right" or "import error"."""
    exercise: object
    status: str
    error: float | None = None
    detail: str = ""
    labels: list = field(default_factory=list)
    shape_error: bool = False


@dataclass
class ImportFailure:
    path: str
    traceback: str
    summary: str


# -- the workbook on disk ------------------------------------------------------------------
def is_workbook(directory):
    return os.path.isdir(directory) and any(
        os.path.isfile(os.path.join(directory, f)) for f in TOPICS)


def load(directory, time_limit=TIME_LIMIT):
    """The student's modules: file name -> module, :class:`ImportFailure` or None (missing).
    Raise :class:`WorkbookError` unless ``directory`` holds at least one of them."""
    if not is_workbook(directory):
        raise WorkbookError(f"{directory!r} is not a workbook (none of {', '.join(TOPICS)} is "
                            f"in it); create one with: nnscratch workbook start {directory}")
    return {f: _import(os.path.join(directory, f), time_limit) for f in TOPICS}


def _import(path, time_limit):
    if not os.path.isfile(path):
        return None
    name = "nnscratch_workbook_" + os.path.basename(path)[:-3]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        with np.errstate(all="raise", under="ignore"):
            _limited(lambda: spec.loader.exec_module(module), time_limit)
    except ExerciseTimeout:
        return ImportFailure(path, "", f"{os.path.basename(path)} was still running after "
                             f"{time_limit:g} s while being imported (a loop at module level?)")
    except Exception as err:  # the student's code: any error is reported, none is raised
        return ImportFailure(path, _student_traceback(err, path),
                             f"{os.path.basename(path)} failed to import "
                             f"({type(err).__name__}{_line_of(err, path)}): fix it and check "
                             "again")
    return module


def _student_traceback(err, path):
    """The traceback from the first frame in the student's file on (the grader's frames
    are noise to the student); a SyntaxError has none and shows its line."""
    tb = err.__traceback__
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != \
            os.path.abspath(path):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(err), err, tb))


def _line_of(err, path):
    if isinstance(err, SyntaxError) and err.lineno:
        return f" at line {err.lineno}"
    frames = [f for f in traceback.extract_tb(err.__traceback__)
              if os.path.abspath(f.filename) == os.path.abspath(path)]
    return f" at line {frames[-1].lineno}" if frames else ""


# -- running the student's code with a time limit --------------------------------------------
def _limited(fn, seconds):
    """``fn()``, stopped with :class:`ExerciseTimeout` after ``seconds``."""
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def alarm(signum, frame):
            raise ExerciseTimeout
        previous = signal.signal(signal.SIGALRM, alarm)
        signal.setitimer(signal.ITIMER_REAL, seconds)
        try:
            return fn()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as err:  # handed to the caller's thread
            box["error"] = err
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise ExerciseTimeout
    if "error" in box:
        raise box["error"]
    return box.get("value")


# -- grading one exercise ----------------------------------------------------------------------
class _Wrong(Exception):
    """The student's answer on one case is wrong: which outputs, how, how much."""

    def __init__(self, outputs, message, error=float("inf"), shape=False):
        super().__init__(message)
        self.outputs, self.error, self.shape = outputs, error, shape


def _copy(args):
    return {k: np.array(v) if isinstance(v, np.ndarray) else v for k, v in args.items()}


def _as_tuple(exercise, value, who):
    n = len(exercise.outputs)
    if n == 1:
        return (value,)
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = f"{len(value)} values" if isinstance(value, (tuple, list)) else \
            f"one {type(value).__name__}"
        raise _Wrong(list(exercise.outputs), f"{who} returned {got}; expected {n}: "
                     f"({', '.join(exercise.outputs)})", shape=True)
    return tuple(value)


def _compare(exercise, case, student):
    """The worst relative error of the student's outputs on ``case`` against the library's,
    or :class:`_Wrong`."""
    expected = _as_tuple(exercise, getattr(reference, exercise.name)(**_copy(case.args)),
                         "the library")
    got = _as_tuple(exercise, student, exercise.name)
    worst, wrong = 0.0, []
    for name, a, e in zip(exercise.outputs, got, expected):
        try:
            a = np.asarray(a, dtype=np.float64)
        except (TypeError, ValueError):
            raise _Wrong([name], f"{name} is a {type(a).__name__}, not an array", shape=True) \
                from None
        if a.shape != np.shape(e):
            raise _Wrong([name], f"{name} has shape {a.shape}, expected {np.shape(e)}",
                         shape=True)
        if not np.isfinite(a).all():
            wrong.append((name, float("inf")))
            continue
        err = relative_error(a, np.asarray(e, dtype=np.float64))
        if not err <= COMPARE_TOL:
            wrong.append((name, err))
        worst = max(worst, err)
    if wrong:
        names = [n for n, _ in wrong]
        raise _Wrong(names, "; ".join(f"{n} differs from the library's by {e:.1e}"
                                      + _step_error(n, case, got, expected) if e < np.inf
                                      else f"{n} holds NaN or infinite entries"
                                      for n, e in wrong), max(e for _, e in wrong))
    return worst


def _step_error(name, case, got, expected):
    """For an optimizer's new theta, the error of the step itself: theta's relative error
    is smaller by about |theta| / |step| (1e3 for lr = 1e-3) and would look like a near
    miss. Reported only; the verdict is theta's."""
    if name != "theta" or "theta" not in case.args:
        return ""
    theta = case.args["theta"]
    step = relative_error(np.asarray(got[0], dtype=np.float64) - theta,
                          np.asarray(expected[0], dtype=np.float64) - theta)
    return f" (its step theta_new - theta by {step:.1e})"


def _gradient_check(exercise, case, student):
    outputs = dict(zip(exercise.outputs, _as_tuple(exercise, student, exercise.name)))
    errors = exercise.gradient(case, outputs)
    bad = {k: e for k, e in errors.items() if not e <= TOLERANCE}
    if bad:
        raise _Wrong(list(bad), "; ".join(f"{k} is not the gradient (finite differences "
                                          f"disagree by {e:.1e})" for k, e in bad.items()),
                     max(bad.values()))
    return max(errors.values(), default=0.0)


def describe_case(case):
    """``"single-row batch: dy (1, 3), x (1, 4), W (4, 3)"``, with the values of tiny
    arrays and of numbers."""
    parts = []
    for name, a in case.args.items():
        if isinstance(a, np.ndarray):
            text = f"{name} {a.shape}"
            if a.size <= 4:
                text += " " + np.array2string(a, precision=3, separator=", ").replace("\n", "")
            parts.append(text)
        else:
            parts.append(f"{name} = {a:g}")
    return f"{case.description}: {', '.join(parts)}"


def grade(exercise, module, time_limit=TIME_LIMIT, seed=0):
    """Grade ``exercise`` in the student's ``module`` (a module, an :class:`ImportFailure`
    or None): a :class:`Result`."""
    if isinstance(module, ImportFailure):
        return Result(exercise, "import error", detail=module.summary)
    fn = getattr(module, exercise.name, None) if module is not None else None
    if fn is None:
        where = "missing from" if module is not None else "its file is missing:"
        return Result(exercise, "not started", detail=f"{where} {exercise.topic}")
    cases = exercise.cases(np.random.default_rng(seed))
    failures, worst = [], 0.0

    def run_all():
        nonlocal worst
        for i, case in enumerate(cases):
            try:
                with np.errstate(all="raise", under="ignore"):
                    out = fn(*_copy(case.args).values())    # by position: any names
            except NotImplementedError as err:
                if i == 0:
                    return "not started"
                failures.append((case, _Wrong(list(exercise.outputs), _raised(err))))
                continue
            except (ExerciseTimeout, KeyboardInterrupt):
                raise
            except FloatingPointError as err:
                failures.append((case, _Wrong(list(exercise.outputs), f"floating-point error "
                                              f"({err}): {_stable_hint(exercise)}")))
                continue
            except Exception as err:  # the student's code
                failures.append((case, _Wrong(list(exercise.outputs), _raised(err))))
                continue
            try:
                worst = max(worst, _compare(exercise, case, out))
                if i == 0 and exercise.gradient is not None:
                    worst = max(worst, _gradient_check(exercise, case, out))
            except _Wrong as wrong:
                failures.append((case, wrong))
        return None

    try:
        if _limited(run_all, time_limit) == "not started":
            return Result(exercise, "not started")
    except ExerciseTimeout:
        return Result(exercise, "wrong", detail=f"still running after {time_limit:g} s (an "
                      "infinite loop?): stopped", labels=exercise.labels_of(exercise.outputs))
    if not failures:
        return Result(exercise, "right", error=worst)
    case, wrong = min(failures, key=lambda f: f[0].size())
    return Result(exercise, "wrong", error=wrong.error,
                  detail=f"{wrong}; smallest failing input: {describe_case(case)}",
                  labels=exercise.labels_of(wrong.outputs), shape_error=wrong.shape)


def _stable_hint(exercise):
    if exercise.stable:
        return "write the stable form (no exp of a large positive number, no log of 0)"
    return "an overflow or a division by zero where the library has none"


def _raised(err):
    frames = traceback.extract_tb(err.__traceback__)
    where = f" at line {frames[-1].lineno} of {os.path.basename(frames[-1].filename)}" \
        if frames else ""
    return f"raised {type(err).__name__}{where}: {err}"


# -- the whole workbook ------------------------------------------------------------------------
def select(names):
    """The exercises named (exercise names, or chapters: ``06_vae``, ``06_vae.py``, ``06`` or
    ``vae``), in the book's order; all of them for no names."""
    if not names:
        return list(EXERCISES)
    chosen = set()
    for name in names:
        stem = name[:-3] if name.endswith(".py") else name
        # a chapter by its file's stem, its number or its name: "06_vae", "06", "vae"
        topic = [e.name for e in EXERCISES if stem in (e.topic[:-3], e.topic[:2], e.topic[3:-3])]
        if name in BY_NAME:
            chosen.add(name)
        elif topic:
            chosen.update(topic)
        else:
            raise WorkbookError(f"no exercise or chapter {name!r}; the chapters: "
                                f"{', '.join(t[:-3] for t in TOPICS)}; the exercises: "
                                f"{', '.join(BY_NAME)}")
    return [e for e in EXERCISES if e.name in chosen]


def grade_workbook(directory, names=(), time_limit=TIME_LIMIT):
    """``(results, modules)`` for the exercises ``names`` (all by default) of the workbook in
    ``directory``."""
    exercises = select(names)
    modules = load(directory, time_limit)
    return [grade(e, modules[e.topic], time_limit) for e in exercises], modules


def report(results, modules, directory):
    """``(table, errors, exit_status)``: the table, the details of wrong answers and the
    progress line; then (``errors``, for stderr) the student's traceback of a module that
    fails to import and a one-line verdict on what could not be graded. The status is 0
    when every attempted exercise is right (and one is), 2 for a module that fails to import
    or an answer of the wrong shape, 1 otherwise."""
    width = max(len(r.exercise.name) for r in results)
    lines = [f"workbook {directory}", "",
             f"{'exercise':<{width}}  {'file':<18} {'status':<12}  relative error"]
    for r in results:
        err = "-" if r.error is None else f"{r.error:.1e}"
        lines.append(f"{r.exercise.name:<{width}}  {r.exercise.topic:<18} {r.status:<12}  {err}")
    wrong = [r for r in results if r.status == "wrong"]
    for r in wrong:
        lines += ["", f"{r.exercise.name}: wrong. Re-read {cite(r.labels)} in {r.exercise.page}.",
                  f"  {r.detail}"]
    done = sum(r.status == "right" for r in results)
    counts = {s: sum(r.status == s for r in results) for s in ("wrong", "not started",
                                                                "import error")}
    rest = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    lines += ["", f"{done} of {len(results)} done" + (f" ({rest})" if rest else "")]
    attempted = [r for r in results if r.status != "not started"]
    if not attempted:
        lines.append("nothing attempted yet: open a file of the workbook, write a function, "
                     "and check again")
    failed = [m for m in modules.values() if isinstance(m, ImportFailure)]
    shapes = [r for r in wrong if r.shape_error]
    if failed:
        errors = [m.traceback.rstrip() for m in failed if m.traceback]
        return "\n".join(lines), "\n".join(errors + [f"nnscratch: error: {failed[0].summary}"]), 2
    if shapes:
        r = shapes[0]
        what = r.detail.split("; smallest")[0]
        if not what.startswith(r.exercise.name + " "):   # "dW has shape ...": say whose
            what = f"{r.exercise.name}: {what}"
        return "\n".join(lines), f"nnscratch: error: {what}", 2
    return "\n".join(lines), "", 0 if attempted and not wrong else 1
