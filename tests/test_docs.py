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
* no label is defined twice, and every label a notebook or a page mentions exists;
* an equation of pure math (a derivation step) says instead which notebook checks it
  numerically (``Checked in: `notebooks/05_vae.py```), and that notebook cites it.
"""
import importlib
import importlib.util
import inspect
import json
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LABEL = r"[a-z][a-z0-9]*-\d+"
DEFINED = re.compile(r"\$\$[^$]+\$\$[ \t]*\((" + LABEL + r")\)")
IMPLEMENTED = re.compile(r"\$\$[^$]+\$\$[ \t]*\((" + LABEL + r")\)[ \t]*\n\s*\n"
                         r"Implemented by: ([^\n]+(?:\n[^\n]+)*)")
# an equation of pure math (a step of a derivation, no code of its own) is checked
# numerically in a notebook instead: "Checked in: `notebooks/05_vae.py` (...)"
CHECKED = re.compile(r"\$\$[^$]+\$\$[ \t]*\((" + LABEL + r")\)[ \t]*\n\s*\n\s*"
                     r"Checked in: `(notebooks/[^`]+\.py)`")
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


def checked_equations(texts=None):
    """label -> the notebook that checks it numerically."""
    return {label: notebook for text in (pages() if texts is None else texts).values()
            for label, notebook in CHECKED.findall(text)}


@pytest.mark.parametrize("label", sorted(doc_equations()))
def test_each_doc_equation_names_its_implementation(label):
    assert doc_equations()[label] or label in checked_equations(), (
        f"({label}) in docs/ is not followed by 'Implemented by: {{py:func}}`nnscratch...`' "
        "(or, for pure math, 'Checked in: `notebooks/NN_name.py`')")


@pytest.mark.parametrize("label,notebook", sorted(checked_equations().items()))
def test_checked_equation_is_checked_in_its_notebook(label, notebook):
    text = (ROOT / notebook).read_text()
    assert cites(text, label), f"{notebook} does not cite ({label})"
    assert "assert " in text


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


# -- every citation in a docstring becomes a link ------------------------------------------

def _docs_extension():
    spec = importlib.util.spec_from_file_location(
        "nnscratch_docs", ROOT / "docs" / "_ext" / "nnscratch_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _docstrings():
    """(name, docstring) of every module, class, function and method of nnscratch."""
    import pkgutil

    import nnscratch
    found = {}
    for info in pkgutil.walk_packages(nnscratch.__path__, "nnscratch."):
        if info.name.endswith("__main__"):
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:                   # an optional dependency (cupy, matplotlib)
            continue
        found[info.name] = inspect.getdoc(module) or ""
        for name, obj in vars(module).items():
            if getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                found[f"{info.name}.{name}"] = inspect.getdoc(obj) or ""
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and member.__doc__:
                        found[f"{info.name}.{name}.{attr}"] = inspect.getdoc(member)
    return found


def test_every_equation_cited_in_a_docstring_is_a_link():
    pytest.importorskip("docutils")
    ext = _docs_extension()
    labels = set(doc_equations())
    mention = re.compile(r"(?<![\w-])(" + LABEL + r")(?![\w-])")
    unlinked = {}
    for name, doc in _docstrings().items():
        lines = ext.link_docstring(doc.splitlines(), labels)
        math_indent = None
        for line in lines:
            indent = len(line) - len(line.lstrip())
            if math_indent is not None and (not line.strip() or indent > math_indent):
                continue                      # inside a math block: TeX, not a citation
            math_indent = indent if ".. math::" in line else None
            rest = re.sub(r":eq:`[^`]*`|``.*?``|:math:`[^`]*`", "", line)
            left = [m for m in mention.findall(rest) if m in labels]
            if left:
                unlinked.setdefault(name, []).extend(left)
    assert not unlinked, f"equation citations that the docs would not link: {unlinked}"


def test_the_linker_links_both_forms():
    pytest.importorskip("docutils")
    ext = _docs_extension()
    lines = ext.link_docstring(["eq. (dense-1); eqs. dense-2 to dense-4, ``dense-1``",
                                ":math:`a-1` and (nolabel-3)"], {"dense-1", "dense-2",
                                                                  "dense-4"})
    assert lines == ["eq. :eq:`dense-1`; eqs. :eq:`dense-2` to :eq:`dense-4`, ``dense-1``",
                     ":math:`a-1` and (nolabel-3)"]


# -- the built pages render their math offline ----------------------------------------------

def _check_docs():
    spec = importlib.util.spec_from_file_location("check_docs",
                                                  ROOT / "scripts" / "check_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_docs_ship_mathjax_and_load_no_remote_script():
    conf = (ROOT / "docs" / "conf.py").read_text()
    path = re.search(r'^mathjax_path = "([^"]+)"', conf, re.M).group(1)
    assert not re.match(r"(https?:)?//", path)
    assert (ROOT / "docs" / "_static" / path).stat().st_size > 1_000_000
    check = _check_docs()
    assert check.remote_references(
        '<script defer src="https://cdn.example/mathjax/tex-chtml.js"></script>'
        '<link rel="stylesheet" href="//fonts.example/x.css"><script src="_static/a.js">'
    ) == ["https://cdn.example/mathjax/tex-chtml.js", "//fonts.example/x.css"]
    assert check.remote_css_references(
        '@import url("https://fonts.example/css?family=Lato"); @import "../basic.css";'
        "src: url(../webfonts/fa-solid.woff2), url( '//cdn.example/x.woff' );"
    ) == ["https://fonts.example/css?family=Lato", "//cdn.example/x.woff"]


def test_the_typeset_check_can_fail():
    check = _check_docs()
    raw = '<div class="math notranslate nohighlight">\\[ y = x W + b \\]</div>'
    assert any("raw" in p for p in check.typeset_problems(raw))
    done = ('<div class="math notranslate nohighlight"><mjx-container><svg></svg>'
            '<mjx-assistive-mml>y</mjx-assistive-mml></mjx-container></div>')
    assert check.typeset_problems(done) == []
    assert check.typeset_problems(done.replace("<svg>", '<svg data-mjx-error="x">'))


def test_the_solutions_check_can_fail():
    """scripts/check_docs.py on MyST-NB's rendering of a chapter: a solution's code cell in
    its collapsed hide-cell block and its prose in a closed <details> pass; the same cell
    without the hide-cell tag, or the prose shown, fail."""
    check = _check_docs()
    cell = ('<div class="cell tag_solution tag_hide-cell docutils container">\n'
            '<details class="admonition hide above-input">\n<summary aria-label="Toggle">')
    prose = "<details><summary>Solution 1</summary>\n<p>The parameter gradients...</p>"
    assert check.solution_problems(cell + prose) == []
    assert check.solution_problems(cell.replace(" tag_hide-cell", "") + prose)
    assert check.solution_problems(cell.replace("<details", "<details open"))
    assert check.solution_problems(cell + prose.replace("<details>", "<p>"))
    assert check.solution_problems('<div class="cell tag_solution docutils container">\n'
                                   '<div class="cell_input docutils container">')


def test_the_shipped_mathjax_typesets_offline_in_chromium(tmp_path):
    """A page with display and inline math and the docs' own MathJax, opened from disk in
    headless Chromium: every equation is typeset, none is left as raw TeX."""
    check = _check_docs()
    browser = check.find_browser()
    if browser is None:
        pytest.skip("no chromium (apt-get install chromium)")
    mathjax = (ROOT / "docs" / "_static" / "mathjax" / "tex-svg-full.js").as_uri()
    page = tmp_path / "page.html"
    page.write_text(
        '<html><head><script defer src="' + mathjax + '"></script></head><body>'
        '<div class="math notranslate nohighlight">\\[ \\log p(x) \\ge \\mathbb E_q '
        '\\Big[\\log \\frac{p(x, z)}{q(z \\mid x)}\\Big] \\tag{vae-9} \\]</div>'
        '<p>with <span class="math notranslate nohighlight">\\(\\sigma(s)\\)</span>.</p>'
        '</body></html>')
    dom = check.render(browser, page)
    assert check.typeset_problems(dom) == [], dom[:2000]
    assert dom.count("<mjx-container") == 2


def test_training_step_links_every_line_to_code():
    """docs/training_step.md: each numbered line of the two algorithms names the code that
    does it, and every name it links resolves to an importable, documented object."""
    text = (ROOT / "docs" / "training_step.md").read_text()
    blocks = re.findall(r"```\{container\} source-links\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    for block in blocks:
        start = re.search(r"^1\. ", block, re.M).start()
        # each numbered line, without the bold section heading that may follow it
        lines = [line.split("\n\n")[0] for line in re.split(r"\n(?=\d+\. )", block[start:])]
        numbers = [int(line.split(".")[0]) for line in lines]
        assert numbers == list(range(1, len(lines) + 1)) and 15 <= len(lines) <= 25
        for line in lines:
            targets = TARGET.findall(line)
            assert targets, f"no code linked on line {line[:60]!r}"
            for target in (t.lstrip("~") for t in targets):
                obj = resolve(target)          # a private helper links to its source only
                assert target.rsplit(".", 1)[1].startswith("_") or inspect.getdoc(obj), target


# -- the chapters: committed executed notebooks, stamped with their source's hash -----------

def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, ROOT / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


chapters = _load("chapters", "docs/_ext/chapters.py")
SOURCES = chapters.sources()

#: Chapters not executed in full mode yet in this tree (their committed .ipynb is missing or
#: stale). Strict: once a chapter is executed and committed, its entry must go. The lead
#: empties this list after the full run (`make notebooks`, then commit notebooks/*.ipynb).
NOT_EXECUTED_YET = set()
#: Chapters in the navigation whose source may not be in this tree yet (another branch
#: writes it); the site shows a page saying so. Empty it once they are all here.
NOT_WRITTEN_YET = set()


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_each_chapter_is_executed_in_full_mode_from_its_source(source):
    """notebooks/NN_name.ipynb is committed, executed in full mode from the source as it is
    now (the sha256 in its stamp): the site shows it, so it must not be stale."""
    state = chapters.state(source)
    if source.stem in NOT_EXECUTED_YET:
        assert state != "fresh", f"{source.stem} is executed: remove it from NOT_EXECUTED_YET"
    else:
        assert state == "fresh", (
            f"notebooks/{source.stem}.ipynb {chapters.WHY[state]}: run "
            f"`make notebooks CHAPTERS={source.stem[:2]}` and commit the .ipynb")


def test_every_chapter_is_in_the_navigation():
    """Each chapter once, in docs/index.md (in reading order, next to its derivation); a
    chapter of the navigation without a source only if NOT_WRITTEN_YET names it."""
    nav = chapters.navigation()
    assert len(nav) == len(set(nav))
    assert {p.stem for p in SOURCES} <= set(nav), "a chapter is missing from docs/index.md"
    assert set(nav) - {p.stem for p in SOURCES} <= NOT_WRITTEN_YET


def test_the_chapters_stay_under_15_mb():
    total = sum(p.stat().st_size for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert total < 15e6, f"the executed chapters take {total / 1e6:.1f} MB"


def test_a_stale_chapter_is_caught_and_not_shown(tmp_path):
    """The stamp check (docs/_ext/chapters.py): a chapter is shown only when its executed
    notebook ran in full mode from the source's present bytes."""
    nbs, out = tmp_path / "notebooks", tmp_path / "chapters"
    nbs.mkdir()
    for name in ("01_a", "02_b", "03_c", "04_d"):
        (nbs / f"{name}.py").write_text(f"# %% [markdown]\n# # {name[:2]} Title {name}\n")
    for name, mode in (("01_a", "full"), ("02_b", "full"), ("03_c", "fast")):
        nb = chapters.stamp({"metadata": {}, "cells": []}, nbs / f"{name}.py", mode)
        (nbs / f"{name}.ipynb").write_text(json.dumps(nb))
    (nbs / "02_b.py").write_text("# %% [markdown]\n# # 02 Title 02_b, edited\n")
    states = chapters.stage(out, nbs, names=["01_a", "02_b", "03_c", "04_d", "05_e"])
    assert states == {"01_a": "fresh", "02_b": "stale", "03_c": "fast", "04_d": "missing",
                      "05_e": "unwritten"}
    assert (out / "01_a.ipynb").exists() and not (out / "02_b.ipynb").exists()
    page = (out / "02_b.md").read_text()
    assert page.startswith("# 02 Title 02_b, edited") and "stale" in page
    assert "fast mode" in (out / "03_c.md").read_text()
    (nbs / "01_a.ipynb").write_text(json.dumps({"metadata": {}, "cells": []}))
    assert chapters.state(nbs / "01_a.py") == "stale"            # no stamp at all


def test_executor_stamps_what_the_check_reads(tmp_path):
    """scripts/execute_notebooks.py runs a chapter in a kernel and writes the stamp that
    chapters.state reads back as fresh (a one-cell chapter, so it takes a second)."""
    pytest.importorskip("nbconvert")
    pytest.importorskip("jupytext")
    execute = _load("execute_notebooks", "scripts/execute_notebooks.py")
    source = tmp_path / "01_tiny.py"
    source.write_text("# %% [markdown]\n# # 01 Tiny\n\n# %%\nprint(6 * 7)\n")
    out = execute.execute(source, tmp_path / "01_tiny.ipynb", "full", timeout=120)
    nb = json.loads(out.read_text())
    assert "".join(nb["cells"][1]["outputs"][0]["text"]) == "42\n"
    assert "execution" not in nb["cells"][1]["metadata"]
    assert chapters.state(source) == "fresh"


# -- the pictures of the networks are drawn from the code -----------------------------------

draw_networks = _load("draw_networks", "scripts/draw_networks.py")


def test_the_network_figures_show_what_the_code_builds():
    """docs/figures/networks.json holds the hash of what each figure shows (layer lists of
    the presets, the nodes and edges of the steps), rebuilt here from the code."""
    stale = draw_networks.stale()
    assert not stale, f"redraw with `python scripts/draw_networks.py`: {stale}"


def test_the_network_figures_cite_real_equations_and_are_on_a_page():
    labels = set(doc_equations())
    text = " ".join(json.dumps(spec) for spec in draw_networks.specs().values())
    cited = citations(text)
    assert {"gan-7", "vae-2", "gan-1"} <= cited and cited <= labels, cited - labels
    shown = " ".join(pages().values())
    for name in draw_networks.specs():
        assert f"figures/{name}.png" in shown, f"{name}.png is on no page"


def test_a_changed_preset_changes_the_figure(monkeypatch):
    from nnscratch.models import gan
    before = draw_networks.digest(draw_networks.gan_spec("toy"))
    monkeypatch.setitem(gan.PRESETS, "toy", {**gan.PRESETS["toy"], "G_hidden": (64, 64)})
    assert draw_networks.digest(draw_networks.gan_spec("toy")) != before
