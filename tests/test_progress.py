"""Tests of nnscratch.training.progress.ProgressBar, with fake clocks and in-memory streams."""

import io

import numpy as np
import pytest

from nnscratch.training.progress import ProgressBar


class FakeClock:
    """A clock the test moves by hand, so intervals are exact and tests are instant."""

    def __init__(self, t=100.0):
        self.t = t

    def __call__(self):
        return self.t


class TTYStream(io.StringIO):
    def isatty(self):
        return True


def test_line_shows_count_percent_rate_eta_and_postfix():
    clock = FakeClock()
    bar = ProgressBar(total=100, desc="epoch 3/10", unit="img", stream=io.StringIO(), clock=clock)
    clock.t += 5.0
    bar.update(25, loss_d=0.123456789, step=7)
    line = bar.format_line()
    # 25 units in 5 s is 5 img/s, so 75 left take 15 s.
    assert line == "epoch 3/10:  25% 25/100 img [00:05<00:15, 5.0 img/s] loss_d=0.1235, step=7"


def test_non_tty_prints_a_full_line_at_most_every_log_interval_and_at_close():
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(total=1000, stream=out, clock=clock)  # StringIO is not a TTY
    for _ in range(99):  # 9.9 s of updates: nothing yet, so logs stay short
        clock.t += 0.1
        bar.update(1)
    assert out.getvalue() == ""
    clock.t += 0.2
    bar.update(1)
    assert out.getvalue().count("\n") == 1
    for _ in range(50):
        clock.t += 0.1
        bar.update(1)
    assert out.getvalue().count("\n") == 1
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "\r" not in out.getvalue()
    assert lines[-1].startswith(" 15% 150/1000 it [")


def test_tty_redraws_in_place_with_carriage_return():
    clock, out = FakeClock(), TTYStream()
    bar = ProgressBar(total=10, stream=out, clock=clock, min_interval=0.1)
    bar.update(1)  # a terminal shows the bar at once
    assert out.getvalue().startswith("\r") and "10%" in out.getvalue()
    bar.update(1)  # same instant: within min_interval, no redraw
    assert out.getvalue().count("\r") == 1
    clock.t += 0.2
    bar.update(1)
    assert out.getvalue().count("\r") == 2
    bar.close()
    assert out.getvalue().endswith("\n") and "\n" not in out.getvalue()[:-1]
    assert " 30% 3/10" in out.getvalue().rsplit("\r", 1)[-1]


def test_tty_pads_a_shorter_line_over_a_longer_one():
    clock, out = FakeClock(), TTYStream()
    bar = ProgressBar(total=10, stream=out, clock=clock)
    bar.update(1, note="a long postfix value")
    clock.t += 1
    bar.set_postfix()
    last = out.getvalue().rsplit("\r", 1)[-1]
    assert len(last) >= len("note=a long postfix value") and last.rstrip() == bar.format_line()


def test_set_postfix_replaces_and_update_merges():
    bar = ProgressBar(total=3, stream=io.StringIO(), clock=FakeClock())
    bar.update(1, a=1.0, b=np.float32(2.5))
    bar.update(1, b=3)
    assert bar.format_line().endswith("a=1, b=3")
    bar.set_postfix(c=1e-7)
    assert bar.format_line().endswith(" c=1e-07")


def test_context_manager_closes_once():
    out = io.StringIO()
    with ProgressBar(total=2, stream=out, clock=FakeClock()) as bar:
        bar.update(2)
    assert bar.closed and out.getvalue().count("\n") == 1
    bar.close()
    bar.update(1)  # after close: counted, never drawn
    assert out.getvalue().count("\n") == 1


def test_unknown_total_has_no_percent_or_eta():
    clock = FakeClock()
    bar = ProgressBar(stream=io.StringIO(), unit="B", clock=clock)
    clock.t += 2
    bar.update(10)
    assert bar.format_line() == "10 B [00:02, 5.0 B/s]"


def test_unit_scale_uses_si_prefixes():
    clock = FakeClock()
    bar = ProgressBar(total=26_421_880, unit="B", unit_scale=True, stream=io.StringIO(),
                      clock=clock)
    clock.t += 10
    bar.update(13_210_940)
    assert bar.format_line() == " 50% 13.2M/26.4M B [00:10<00:10, 1.32M B/s]"


def test_long_runs_show_hours():
    clock = FakeClock()
    bar = ProgressBar(total=2, stream=io.StringIO(), clock=clock)
    clock.t += 3725
    bar.update(1)
    assert "[1:02:05<1:02:05," in bar.format_line()


def test_disable_writes_nothing_but_still_counts():
    out = io.StringIO()
    with ProgressBar(total=5, stream=out, disable=True) as bar:
        bar.update(5)
    assert out.getvalue() == "" and bar.n == 5


def test_default_stream_is_stderr(capsys):
    with ProgressBar(total=1, desc="x") as bar:
        bar.update()
    captured = capsys.readouterr()
    assert captured.out == "" and "x: 100% 1/1 it" in captured.err


@pytest.mark.parametrize("total", [0, None])
def test_zero_elapsed_and_zero_total_do_not_divide_by_zero(total):
    bar = ProgressBar(total=total, stream=io.StringIO(), clock=FakeClock())
    bar.close()
    assert "?" in bar.format_line()
