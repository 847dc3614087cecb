"""Execute the chapters and stamp each with the hash of its source (what `make notebooks` runs).

    python scripts/execute_notebooks.py                  # every chapter, full mode
    python scripts/execute_notebooks.py 01_dense_layer   # one chapter
    NNSCRATCH_FAST=1 python scripts/execute_notebooks.py # fast mode, into runs/notebooks_fast

Each jupytext source ``notebooks/NN_name.py`` is run top to bottom in a Jupyter kernel (from
``notebooks/``, as a reader would run it) and written as ``NN_name.ipynb`` with its outputs
and figures, and with the stamp of ``docs/_ext/chapters.py`` in its metadata (the source's
sha256 and the mode). Full mode writes beside the sources: those are the committed chapters
the site shows. Fast mode writes to ``runs/notebooks_fast/`` so that it can never replace a
committed chapter. The cells' execution timestamps are dropped and their ids numbered, so
that a rerun that prints the same numbers leaves the same file.

BLAS runs on one thread unless the environment says otherwise: the chapters' matrices are
small, and on a busy machine extra BLAS threads spin against other processes.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def _chapters():
    spec = importlib.util.spec_from_file_location("chapters", ROOT / "docs/_ext/chapters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fast_mode():
    return os.environ.get("NNSCRATCH_FAST", "0").lower() not in ("0", "", "false", "no")


def execute(source, out, mode, timeout=None):
    """Run ``source`` in a kernel from ``notebooks/`` and write the stamped ``out``."""
    import jupytext
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = jupytext.read(source)
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(source.parent)}})
    for i, cell in enumerate(nb.cells):
        cell.metadata.pop("execution", None)
        cell.id = f"cell-{i}"                     # jupytext draws random ids: keep diffs small
    _chapters().stamp(nb, source, mode)
    nbformat.write(nb, out)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="chapters (NN_name or NN); default: all")
    parser.add_argument("--out", type=pathlib.Path, default=None,
                        help="directory of the .ipynb files (default: notebooks/ in full "
                             "mode, runs/notebooks_fast/ in fast mode)")
    args = parser.parse_args(argv)
    mode = "fast" if fast_mode() else "full"
    out = args.out or (NOTEBOOKS if mode == "full" else ROOT / "runs" / "notebooks_fast")
    sources = _chapters().sources(NOTEBOOKS)
    if args.names:
        picked = [s for s in sources if s.stem in args.names or s.stem[:2] in args.names]
        unknown = set(args.names) - {s.stem for s in picked} - {s.stem[:2] for s in picked}
        if unknown:
            print(f"execute_notebooks: no chapter {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        sources = picked
    out.mkdir(parents=True, exist_ok=True)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")           # the kernel inherits the environment
    if mode == "fast":
        os.environ.setdefault("NNSCRATCH_FIGURES", str(out / "figures"))
    for source in sources:
        start = time.perf_counter()
        path = execute(source, out / f"{source.stem}.ipynb", mode)
        size = path.stat().st_size / 2**20
        print(f"{source.stem}: {mode} mode, {time.perf_counter() - start:.0f} s, "
              f"{size:.2f} MiB -> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
