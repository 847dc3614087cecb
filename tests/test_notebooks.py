"""Every notebook runs top to bottom in fast mode (NNSCRATCH_FAST=1).

The notebooks are stored as jupytext percent-format scripts (``notebooks/NN_*.py``): they
diff like code and run as plain Python, which is what this test does. ``make notebooks``
turns them into ``.ipynb`` files with outputs, in full mode.
"""
import os
import pathlib
import subprocess
import sys

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.py"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_fast_mode(path, tmp_path):
    env = dict(os.environ, NNSCRATCH_FAST="1", NNSCRATCH_FIGURES=str(tmp_path),
               MPLBACKEND="Agg", NNSCRATCH_CACHE=str(tmp_path / "cache"))
    result = subprocess.run([sys.executable, path.name], cwd=path.parent, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 3
