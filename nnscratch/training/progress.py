"""A small, dependency-free progress bar for downloads and training loops.

Example::

    with ProgressBar(total=n_batches * batch, desc="epoch 3/10", unit="img") as bar:
        for idx in batches(...):
            ...
            bar.update(len(idx), loss_d=loss_d, loss_g=loss_g)

A line looks like::

    epoch 3/10:  45% 27000/60000 img [00:12<00:15, 2250.0 img/s] loss_d=0.6931, loss_g=1.204

On a terminal the line is redrawn in place with ``\\r`` (at most every ``min_interval``
seconds). When the stream is not a terminal (CI, a log file) a carriage return would leave
thousands of fragments in the log, so a full line is printed at most every ``log_interval``
seconds (10 s by default) and once more at ``close()``.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from typing import Callable, TextIO

__all__ = ["ProgressBar"]

_SI_PREFIXES = ("", "k", "M", "G", "T", "P")


def _format_count(n: float, unit_scale: bool) -> str:
    """``1234567 -> '1.23M'`` with ``unit_scale``, else the plain integer."""
    if not unit_scale:
        return str(int(n)) if float(n).is_integer() else f"{n:.4g}"
    for prefix in _SI_PREFIXES:
        if abs(n) < 1000 or prefix == _SI_PREFIXES[-1]:
            return f"{n:.3g}{prefix}" if prefix else f"{n:.4g}"
        n /= 1000
    raise AssertionError("unreachable")


def _format_time(seconds: float) -> str:
    """``75 -> '01:15'``, ``3725 -> '1:02:05'``; ``'?'`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def _format_value(v: object) -> str:
    """Floats compactly (4 significant digits), everything else with ``str``."""
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral):
        return f"{float(v):.4g}"
    return str(v)


class ProgressBar:
    """Count units of work and show count/total, percent, rate and time left.

    Args:
        total: number of units expected, or ``None`` if unknown (then no percent or ETA).
        desc: text in front of the bar, e.g. ``"epoch 3/10"``.
        unit: name of one unit, e.g. ``"img"`` or ``"B"``.
        stream: where to write; ``None`` means ``sys.stderr`` (looked up when the bar is
            created, so pytest's capture sees it).
        min_interval: seconds between redraws on a terminal.
        disable: write nothing at all (counting still works).
        unit_scale: show counts with SI prefixes (``26.4M B``), handy for bytes.
        log_interval: seconds between lines when ``stream`` is not a terminal.
        clock: a function returning seconds; tests pass a fake one.
    """

    def __init__(
        self,
        total: float | None = None,
        desc: str = "",
        unit: str = "it",
        stream: TextIO | None = None,
        min_interval: float = 0.1,
        disable: bool = False,
        unit_scale: bool = False,
        log_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.desc = desc
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        self.disable = disable
        self.unit_scale = unit_scale
        self.clock = clock
        self.n = 0
        self.postfix: dict[str, object] = {}
        self.closed = False
        self._tty = _isatty(self.stream)
        self._interval = min_interval if self._tty else log_interval
        self._start = clock()
        # A terminal shows the bar at once; a log only gets its first line after an interval.
        self._last_draw = -math.inf if self._tty else self._start
        self._last_width = 0

    # -- public API ---------------------------------------------------------------------

    def update(self, n: float = 1, **postfix: object) -> None:
        """Add ``n`` units of work done; keyword arguments are shown as ``key=value``."""
        self.n += n
        self.postfix.update(postfix)
        self._maybe_draw()

    def set_postfix(self, **postfix: object) -> None:
        """Replace the ``key=value`` values shown after the bar."""
        self.postfix = dict(postfix)
        self._maybe_draw()

    def close(self) -> None:
        """Draw the final state once and end the line. Calling it again does nothing."""
        if self.closed:
            return
        self.closed = True
        if self.disable:
            return
        self._draw(self.clock())
        if self._tty:
            self.stream.write("\n")
        self.stream.flush()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- formatting ---------------------------------------------------------------------

    def format_line(self, now: float | None = None) -> str:
        """The text of the bar at time ``now`` (default: the clock), without ``\\r``/``\\n``."""
        now = self.clock() if now is None else now
        elapsed = max(now - self._start, 0.0)
        rate = self.n / elapsed if elapsed > 0 else None
        count = _format_count(self.n, self.unit_scale)
        parts = [f"{self.desc}: " if self.desc else ""]
        if self.total:
            pct = 100.0 * self.n / self.total
            parts.append(f"{pct:3.0f}% {count}/{_format_count(self.total, self.unit_scale)}")
            left = (self.total - self.n) / rate if rate else None
            times = f"{_format_time(elapsed)}<{_format_time(left)}"
        else:
            parts.append(count)
            times = _format_time(elapsed)
        if rate is None:
            rate_txt = "?"
        else:
            rate_txt = _format_count(rate, True) if self.unit_scale else f"{rate:.1f}"
        parts.append(f" {self.unit} [{times}, {rate_txt} {self.unit}/s]")
        if self.postfix:
            pairs = (f"{k}={_format_value(v)}" for k, v in self.postfix.items())
            parts.append(" " + ", ".join(pairs))
        return "".join(parts)

    # -- drawing ------------------------------------------------------------------------

    def _maybe_draw(self) -> None:
        if self.disable or self.closed:
            return
        now = self.clock()
        if now - self._last_draw >= self._interval:
            self._draw(now)

    def _draw(self, now: float) -> None:
        line = self.format_line(now)
        if self._tty:
            # Pad with spaces so a shorter line fully covers the previous, longer one.
            pad = " " * max(self._last_width - len(line), 0)
            self.stream.write("\r" + line + pad)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self._last_width = len(line)
        self._last_draw = now


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False
