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


SUMMARY = re.compile(r"<details><summary>Solution( \d)?</summary>\n\n")
SOLUTION_TAGS = {"solution", "hide-cell"}


def exercises_and_solutions(path):
    """The chapter's cells from '## Exercises' on: (the statements cell, [(prose, [code])])."""
    jupytext = pytest.importorskip("jupytext")
    cells = jupytext.read(path).cells
    starts = [i for i, c in enumerate(cells)
              if c.cell_type == "markdown" and c.source.startswith("## Exercises")]
    assert len(starts) == 1, "a chapter has one markdown cell opening with '## Exercises'"
    statements, rest = cells[starts[0]], cells[starts[0] + 1:]
    solutions = []
    for cell in rest:
        if cell.cell_type == "markdown":
            solutions.append((cell, []))
        else:
            assert solutions, "the first cell after the exercises is a solution's prose"
            solutions[-1][1].append(cell)
    return statements, solutions


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_ends_with_exercises_whose_solutions_assert(path):
    """Two to four exercises, one of them "break it and watch", each followed by a worked
    solution whose code asserts what it claims (fast mode runs it, so it cannot rot)."""
    statements, solutions = exercises_and_solutions(path)
    numbered = re.findall(r"^(\d)\. \*\*", statements.source, re.M)
    assert 2 <= len(numbered) <= 4 and numbered == [str(i + 1) for i in range(len(numbered))]
    assert "Break it and watch" in statements.source
    assert len(solutions) == len(numbered), "one solution (prose, then code) per exercise"
    for number, (prose, code) in zip(numbered, solutions):
        label = SUMMARY.match(prose.source)
        assert label and label.group(1) in (None, f" {number}"), \
            f"solution {number} opens with <details><summary>Solution {number}</summary>"
        assert any(re.search(r"^\s*assert ", c.source, re.M) for c in code), \
            f"solution {number} asserts nothing"
        assert "\n## " not in prose.source and not prose.source.startswith("## "), \
            "the exercises come last"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_solution_is_hidden_until_opened(path):
    """The book's convention: a solution's prose is a collapsed <details> block (rendered as
    markdown inside, in Jupyter and in the site), its code a cell tagged "solution" and
    "hide-cell" (MyST-NB collapses it) whose source and outputs Jupyter hides."""
    _, solutions = exercises_and_solutions(path)
    for prose, code in solutions:
        text = prose.source.strip()
        assert SUMMARY.match(text) and text.endswith("\n\n</details>") \
            and text.count("<details>") == 1 and text.count("</details>") == 1, \
            f"solution prose not wrapped in one <details> block: {text[:80]!r}"
        for cell in code:
            assert SOLUTION_TAGS <= set(cell.metadata.get("tags", [])), \
                f"solution code not tagged {sorted(SOLUTION_TAGS)}: {cell.source[:60]!r}"
            assert cell.metadata.get("jupyter") == {"source_hidden": True,
                                                    "outputs_hidden": True}, \
                f"solution code not hidden in Jupyter: {cell.source[:60]!r}"
