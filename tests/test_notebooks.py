"""Every notebook runs top to bottom in fast mode (NNSCRATCH_FAST=1).

The notebooks are stored as jupytext percent-format scripts (``notebooks/NN_*.py``): they
diff like code and run as plain Python, which is what this test does. ``make notebooks``
turns them into ``.ipynb`` files with outputs, in full mode.

BLAS is held to one thread: the problems of fast mode are tiny, and on a loaded 2-core
machine several BLAS threads per process spin against each other and make a 3-second
notebook take a minute.
"""
import os
import pathlib
import re
import subprocess
import sys

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py"))
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path):
    env = dict(os.environ, NNSCRATCH_FAST="1", NNSCRATCH_FIGURES=str(tmp_path),
               MPLBACKEND="Agg", NNSCRATCH_CACHE=str(tmp_path / "cache"), **ONE_THREAD)
    env.pop("NNSCRATCH_BACKEND", None)
    result = subprocess.run([sys.executable, path.name], cwd=path.parent, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_a_jupytext_notebook_that_imports_the_library(path):
    jupytext = pytest.importorskip("jupytext")
    nb = jupytext.read(path)
    kinds = [cell.cell_type for cell in nb.cells]
    assert kinds[0] == "markdown" and nb.cells[0].source.startswith(f"# {path.stem[:2]} "), \
        "a chapter opens with a markdown cell titled '# NN Title'"
    assert kinds.count("code") >= 2 and kinds.count("markdown") >= 3
    assert all(not cell.get("outputs") for cell in nb.cells if cell.cell_type == "code")
    assert "import nnscratch" in path.read_text()


def test_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_ends_with_exercises_whose_solutions_assert(path):
    """Two to four exercises, one of them "break it and watch", each followed by a worked
    solution whose code asserts what it claims (fast mode runs it, so it cannot rot)."""
    text = path.read_text()
    assert "# ## Exercises" in text, "a chapter ends with '## Exercises'"
    exercises = text[text.index("# ## Exercises"):]
    numbered = re.findall(r"^# (\d)\. \*\*", exercises, re.M)
    assert 2 <= len(numbered) <= 4 and numbered == [str(i + 1) for i in range(len(numbered))]
    assert "Break it and watch" in exercises
    solutions = re.split(r"^# ### Solution (\d)\n", exercises, flags=re.M)
    assert solutions[1::2] == numbered, "one '### Solution N' per exercise, in order"
    for number, body in zip(solutions[1::2], solutions[2::2]):
        assert re.search(r"^\s*assert ", body, re.M), f"solution {number} asserts nothing"
    assert "# ## " not in exercises[len("# ## Exercises"):], "the exercises come last"
