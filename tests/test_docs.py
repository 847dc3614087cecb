"""The docs and the code cite the same equations, so they cannot drift apart.

* every equation label the code cites, ``eq. (dense-2)``, is defined in ``docs/``;
* every labelled equation in ``docs/`` names the function that implements it
  ("Implemented by: {py:func}`...`"), that function exists, and its docstring or source
  cites the label.
"""
import importlib
import inspect
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LABEL = r"[a-z][a-z0-9]*-\d+"
DOC_EQUATION = re.compile(r"\$\$[^$]+\$\$\s*\((" + LABEL + r")\)\s*\n\s*\nImplemented by: ([^\n]+)")
DEFINED = re.compile(r"\$\$[^$]+\$\$\s*\((" + LABEL + r")\)")
TARGET = re.compile(r"\{py:(?:func|meth|class)\}`([^`]+)`")
CITED = re.compile(r"\((" + LABEL + r")\)")


def doc_equations():
    """label -> list of implementing targets, over every page of docs/."""
    found = {}
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text()
        for label in DEFINED.findall(text):
            found.setdefault(label, [])
        for label, line in DOC_EQUATION.findall(text):
            found[label] += TARGET.findall(line)
    return found


def code_citations():
    """label -> files of nnscratch/ that cite it."""
    cited = {}
    for path in sorted((ROOT / "nnscratch").rglob("*.py")):
        for label in CITED.findall(path.read_text()):
            cited.setdefault(label, set()).add(path.name)
    return cited


def resolve(target):
    module, _, rest = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), rest)
    except ImportError:
        module, _, cls = module.rpartition(".")
        return getattr(getattr(importlib.import_module(module), cls), rest)


def test_every_cited_equation_is_in_the_docs():
    docs = doc_equations()
    missing = {label: sorted(files) for label, files in code_citations().items()
               if label not in docs}
    assert not missing, f"equations cited by the code but not derived in docs/: {missing}"


@pytest.mark.parametrize("label", sorted(doc_equations()))
def test_each_doc_equation_points_to_code_that_cites_it(label):
    targets = doc_equations()[label]
    assert targets, f"({label}) in docs/ names no implementing function"
    for target in targets:
        obj = resolve(target)
        source = inspect.getsource(obj) + (inspect.getdoc(obj) or "")
        assert f"({label})" in source, f"{target} does not cite ({label})"


def test_the_check_can_fail():
    assert "(not-1)" not in "".join(code_citations())
    assert resolve("nnscratch.dense.Dense.forward")
    with pytest.raises(AttributeError):
        resolve("nnscratch.dense.Dense.no_such_method")
