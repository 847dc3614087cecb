"""The chapters in the site: executed notebooks, committed, each stamped with its source's hash.

A chapter is a jupytext source ``notebooks/NN_name.py`` and, once ``make notebooks`` has run
it in full mode, the executed notebook ``notebooks/NN_name.ipynb`` beside it (outputs and
figures inside, committed, so a repository browser shows it too). The executed notebook's
metadata carries a stamp::

    "nnscratch": {"source": "NN_name.py", "source_sha256": "<sha256 of the .py>", "mode": "full"}

A chapter is *fresh* when the stamp says full mode and its hash is the source's hash as it
is now. At every build (``conf.py`` calls :func:`stage`), ``docs/chapters/`` (a build
product, ignored by git) is laid out for the navigation of ``docs/index.md``: each fresh
chapter is copied there and MyST-NB renders it as it was executed (it never executes
anything: ``nb_execution_mode = "off"``); any other chapter gets a short page with its title
that says why it is not shown (not executed, executed in fast mode, or stale: its source
changed after it ran). ``tests/test_docs.py`` fails on every chapter that is not fresh,
except those it lists as not executed yet.

The executor (``scripts/execute_notebooks.py``, run by ``make notebooks``) writes the stamp
with :func:`stamp`.
"""
from __future__ import annotations

import hashlib
import json
import pathlib
import re
import shutil

DOCS = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = DOCS.parent / "notebooks"
OUT = DOCS / "chapters"
KEY = "nnscratch"
#: a chapter of the navigation, in docs/index.md: ``chapters/01_dense_layer``
NAV_ENTRY = re.compile(r"^chapters/(\d\d_\w+)\s*$", re.M)

WHY = {
    "missing": "has not been executed in full mode in this tree yet",
    "fast": "was last executed in fast mode, whose few steps are not what the text describes",
    "stale": "is stale: its source changed after it was executed",
    "unwritten": "is not in this tree yet",
}


def sources(notebooks=NOTEBOOKS):
    """The chapters' jupytext sources, ``NN_name.py``, in order."""
    return sorted(notebooks.glob("[0-9][0-9]_*.py"))


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def stamp(nb, source, mode):
    """Write the stamp of ``source`` (its name, hash, and the mode it ran in) into the
    metadata of the executed notebook ``nb`` (a dict or an nbformat node)."""
    nb["metadata"][KEY] = {"source": pathlib.Path(source).name,
                           "source_sha256": sha256(source), "mode": mode}
    return nb


def state(source):
    """``"fresh"``, ``"missing"`` (no executed notebook), ``"fast"`` or ``"stale"`` (hash
    mismatch, or no stamp at all)."""
    source = pathlib.Path(source)
    ipynb = source.with_suffix(".ipynb")
    if not ipynb.exists():
        return "missing"
    found = json.loads(ipynb.read_text(encoding="utf-8")).get("metadata", {}).get(KEY, {})
    if found.get("source") != source.name or found.get("source_sha256") != sha256(source):
        return "stale"
    return "fresh" if found.get("mode") == "full" else "fast"


def title(source):
    """The chapter's title, from its first line (``# 01 The dense layer``)."""
    for line in pathlib.Path(source).read_text(encoding="utf-8").splitlines():
        if line.startswith("# # "):
            return line[4:].strip()
    return pathlib.Path(source).stem


def navigation(index=DOCS / "index.md"):
    """The chapters named in the navigation (``chapters/NN_name`` entries), in order."""
    return NAV_ENTRY.findall(pathlib.Path(index).read_text(encoding="utf-8"))


def placeholder(name, heading, why):
    return (f"# {heading}\n\n```{{note}}\nThe executed chapter {WHY[why]}. Its source is "
            f"`notebooks/{name}.py` (run it as a script, or open it in Jupyter with jupytext); "
            "`make notebooks` executes it in full mode and stamps the result.\n```\n")


def stage(out=OUT, notebooks=NOTEBOOKS, names=None):
    """Rewrite ``out``: every chapter of ``names`` (default: the navigation of
    ``docs/index.md``, then any other source) as its executed notebook when fresh, else as a
    page saying why not. Returns ``{name: state}``."""
    found = {p.stem: p for p in sources(notebooks)}
    names = list(navigation() if names is None else names)
    names += [n for n in found if n not in names]
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    states = {}
    for name in names:
        source = found.get(name)
        states[name] = "unwritten" if source is None else state(source)
        if states[name] == "fresh":
            shutil.copy2(source.with_suffix(".ipynb"), out / f"{name}.ipynb")
        else:
            heading = title(source) if source else f"{name[:2]} {name[3:].replace('_', ' ')}"
            (out / f"{name}.md").write_text(placeholder(name, heading, states[name]))
    return states
