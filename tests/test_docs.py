"""The docs, the code and the notebooks cite the same equations, so they cannot drift apart.

Equations are labelled ``<topic>-<n>`` once, in ``docs/*.md``::

    $$ y = x W + b $$ (dense-1)

    Implemented by: {py:meth}`nnscratch.dense.Dense.forward`.

and the code cites them as ``eq. (dense-1)`` (a range ``eqs. (dense-2) to (dense-4)`` cites
every label in it). This file checks, without building Sphinx:

* every label the code cites is derived on a page of ``docs/``;
* every labelled equation names the function(s) implementing it, each of which can be
  imported, has a docstring (so autodoc documents it and the link resolves), and whose
  docstring cites the label;
* no label is defined twice, and every label a notebook or a page mentions exists.
"""
import importlib
import inspect
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LABEL = r"[a-z][a-z0-9]*-\d+"
DEFINED = re.compile(r"\$\$[^$]+\$\$[ \t]*\((" + LABEL + r")\)")
IMPLEMENTED = re.compile(r"\$\$[^$]+\$\$[ \t]*\((" + LABEL + r")\)[ \t]*\n\s*\n"
                         r"Implemented by: ([^\n]+)")
TARGET = re.compile(r"\{py:(?:func|meth|class)\}`~?([^`]+)`")
RANGE = re.compile(r"\((" + LABEL + r")\)\s+to\s+\((" + LABEL + r")\)")
CITED = re.compile(r"\((" + LABEL + r")\)|\b[Ee]qs?\.\s+(" + LABEL + r")\b")

# Docstrings that do not cite their equation yet (the source does, in comments). Strict:
# once a docstring is fixed this xpasses and fails, so the entry must be removed.
DOCSTRING_MISSING = set()


def expand_ranges(text):
    """``(adam-1) to (adam-5)`` -> the text with ``(adam-2) (adam-3) (adam-4)`` appended."""
    extra = []
    for first, last in RANGE.findall(text):
        topic, a = first.rsplit("-", 1)
        topic2, z = last.rsplit("-", 1)
        if topic == topic2:
            extra += [f"({topic}-{n})" for n in range(int(a) + 1, int(z))]
    return text + " " + " ".join(extra)


def citations(text):
    """Every label cited in ``text``, ranges included."""
    return {a or b for a, b in CITED.findall(expand_ranges(text))}


def cites(text, label):
    return label in citations(text)


def pages():
    return {p.name: p.read_text() for p in sorted((ROOT / "docs").glob("*.md"))}


def doc_equations(texts=None):
    """label -> list of implementing targets, over every page of docs/."""
    found = {}
    for text in (pages() if texts is None else texts).values():
        for label in DEFINED.findall(text):
            found.setdefault(label, [])
        for label, line in IMPLEMENTED.findall(text):
            found[label] += TARGET.findall(line)
    return found


def code_citations():
    """label -> files of nnscratch/ that cite it."""
    cited = {}
    for path in sorted((ROOT / "nnscratch").rglob("*.py")):
        for label in citations(path.read_text()):
            cited.setdefault(label, set()).add(str(path.relative_to(ROOT)))
    return cited


def resolve(target):
    """Import ``package.module.function`` or ``package.module.Class.method``."""
    module, _, rest = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), rest)
    except ImportError:
        module, _, cls = module.rpartition(".")
        return getattr(getattr(importlib.import_module(module), cls), rest)


def implementations():
    return [(label, target) for label, targets in sorted(doc_equations().items())
            for target in targets]


def test_docs_define_equations():
    assert len(doc_equations()) > 40


def test_every_cited_equation_is_in_the_docs():
    docs = doc_equations()
    missing = {label: sorted(files) for label, files in code_citations().items()
               if label not in docs}
    assert not missing, f"equations cited by the code but not derived in docs/: {missing}"


def test_no_label_is_defined_twice():
    seen = {}
    for name, text in pages().items():
        for label in DEFINED.findall(text):
            seen.setdefault(label, []).append(name)
    twice = {k: v for k, v in seen.items() if len(v) > 1}
    assert not twice, f"labels defined more than once: {twice}"


@pytest.mark.parametrize("label", sorted(doc_equations()))
def test_each_doc_equation_names_its_implementation(label):
    assert doc_equations()[label], (
        f"({label}) in docs/ is not followed by 'Implemented by: {{py:func}}`nnscratch...`'")


@pytest.mark.parametrize("label,target", implementations())
def test_implementation_exists_and_cites_the_label(label, target):
    obj = resolve(target)
    assert inspect.getdoc(obj), f"{target} has no docstring, so the docs cannot link to it"
    source = inspect.getsource(obj)
    assert cites(source, label), f"{target} does not cite ({label})"


@pytest.mark.parametrize("label,target", [
    pytest.param(label, target, marks=pytest.mark.xfail(
        strict=True, reason="docstring does not cite its equation yet (reported)"))
    if (label, target) in DOCSTRING_MISSING else (label, target)
    for label, target in implementations()])
def test_docstring_cites_the_label(label, target):
    assert cites(inspect.getdoc(resolve(target)), label), \
        f"the docstring of {target} does not name ({label})"


def test_labels_mentioned_in_notebooks_and_pages_exist():
    docs = doc_equations()
    topics = {label.rsplit("-", 1)[0] for label in docs}
    texts = {p.name: p.read_text() for p in sorted((ROOT / "notebooks").glob("*.py"))}
    texts.update(pages())
    mentioned = re.compile(r"(?<![\w-])((?:" + "|".join(sorted(topics)) + r")-\d+)(?![\w-])")
    unknown = {name: sorted(set(mentioned.findall(text)) - set(docs))
               for name, text in texts.items()}
    unknown = {k: v for k, v in unknown.items() if v}
    assert not unknown, f"labels mentioned but not defined in docs/: {unknown}"


def test_the_checks_can_fail():
    page = {"p.md": "$$ y = x $$ (toy-9)\n\nImplemented by: {py:func}`nnscratch.losses.mse`.\n"
                    "$$ z $$ (toy-10)\n"}
    assert doc_equations(page) == {"toy-9": ["nnscratch.losses.mse"], "toy-10": []}
    assert not cites(inspect.getdoc(resolve("nnscratch.losses.mse")), "toy-9")
    assert citations("eqs. (adam-1) to (adam-4), eq. gan-2") == {
        "adam-1", "adam-2", "adam-3", "adam-4", "gan-2"}
    assert not cites("(adam-10)", "adam-1")
    with pytest.raises(AttributeError):
        resolve("nnscratch.dense.Dense.no_such_method")
