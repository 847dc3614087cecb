"""The executed notebooks in the site: ``docs/executed/`` is laid out at every build.

``make notebooks`` runs the chapters (``notebooks/NN_name.py``) in full mode and leaves
``notebooks/NN_name.ipynb`` with their outputs and figures, and ``notebooks/.executed-mode``
saying which mode ran. When those are full-mode runs, each is copied to
``docs/executed/NN_name.ipynb`` and MyST-NB renders it as it was executed (it never executes
anything itself: ``nb_execution_mode = "off"``). Fast-mode outputs (CI's) are not shown:
their numbers come from a few steps and would contradict the text. A notebook whose source
is newer than its run is left out and named, as stale. Without executed notebooks (a fresh
clone, CI) the section is one page that says how to fill it.

``docs/executed/`` is a build product (ignored by git), rewritten by each build.
"""
from __future__ import annotations

import pathlib
import shutil

DOCS = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = DOCS.parent / "notebooks"
OUT = DOCS / "executed"
MODE_FILE = ".executed-mode"          # in notebooks/, written by `make notebooks`

HEADER = """# The chapters, executed

The notebooks of {doc}`../notebooks` as `make notebooks` ran them in full mode: every
output and figure, read from the executed `.ipynb` files (nothing is run while the site is
built).
"""

EMPTY = """
```{note}
{why} Run `make notebooks` (full mode: tens of minutes on 2 cores), then `make docs`, and
each chapter appears here with its outputs and figures. The chapters themselves are in
`notebooks/` as code, and run in fast mode in the test suite.
```
"""


def executed(notebooks=NOTEBOOKS):
    """``(fresh, stale, mode)``: the full-mode executed notebooks that are newer than their
    source, those that are older, and the mode of the last ``make notebooks``."""
    mode_file = notebooks / MODE_FILE
    mode = mode_file.read_text().strip() if mode_file.exists() else None
    fresh, stale = [], []
    if mode == "full":
        for ipynb in sorted(notebooks.glob("[0-9][0-9]_*.ipynb")):
            source = ipynb.with_suffix(".py")
            if source.exists() and source.stat().st_mtime > ipynb.stat().st_mtime:
                stale.append(ipynb)
            else:
                fresh.append(ipynb)
    return fresh, stale, mode


def stage(out=OUT, notebooks=NOTEBOOKS):
    """Rewrite ``out``: the fresh executed notebooks and an index page listing them."""
    fresh, stale, mode = executed(notebooks)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    text = HEADER
    if fresh:
        text += "\n```{toctree}\n:maxdepth: 1\n\n"
        text += "".join(f"{p.stem}\n" for p in fresh) + "```\n"
        for p in fresh:
            shutil.copy2(p, out / p.name)
    else:
        why = {None: "No executed notebooks yet.",
               "fast": "The last `make notebooks` ran in fast mode, whose few steps are not "
                       "what the chapters describe, so nothing is shown."}.get(
            mode, "No executed notebooks yet.")
        text += EMPTY.replace("{why}", why)
    if stale:
        names = ", ".join(f"`{p.stem}`" for p in stale)
        text += f"\nLeft out because their source changed after they ran: {names}.\n"
    (out / "index.md").write_text(text)
    return fresh
