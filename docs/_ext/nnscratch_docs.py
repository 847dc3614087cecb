"""Equation numbers that are the labels the code cites, and directives that take their
content from the code, so these pages cannot go stale.

Equations: ``$$ y = x W + b $$ (dense-1)`` is shown as "(dense-1)", and ``{eq}`dense-1```
renders as "(dense-1)", the same text a reader finds in the docstring and in the comment
on the line that computes it (Sphinx alone would number equations 1, 2, 3 per page). In the
API reference, every "(dense-1)" a docstring cites becomes a link to the derivation.

``{cli-help} train vae``
    The ``--help`` text of that ``nnscratch`` subcommand, from ``nnscratch.cli.build_parser``.
``{dataset-table}``
    The named datasets of ``nnscratch.datasets.registry``: title, licence, mirrors.
``{gradcheck-table}``
    The worst float64 gradient-check error of each component, measured while the page is
    built, with the checks of ``scripts/gradcheck_report.py`` (about half a second).
"""
from __future__ import annotations

import functools
import importlib.util
import os
import pathlib
import re

from docutils import nodes
from docutils.parsers.rst import Directive

HELP_WIDTH = "90"


def _subparser(parser, words):
    for word in words:
        actions = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not actions or word not in actions[0].choices:
            raise ValueError(f"cli-help: no subcommand {' '.join(words)!r}")
        parser = actions[0].choices[word]
    return parser


class CliHelp(Directive):
    optional_arguments = 5
    has_content = False

    def run(self):
        from nnscratch.cli import build_parser
        old = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = HELP_WIDTH          # argparse wraps to the terminal's width
        try:
            parser = build_parser()
            parser.prog = "nnscratch"
            text = _subparser(parser, self.arguments).format_help()
        except ValueError as err:
            raise self.error(str(err))
        finally:
            if old is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = old
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def _table(header, rows, widths):
    table = nodes.table()
    group = nodes.tgroup(cols=len(header))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head, body = nodes.thead(), nodes.tbody()
    group += head
    group += body
    for target, cells in ((head, header), *((body, row) for row in rows)):
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            entry += nodes.paragraph(text=text)
            row += entry
        target += row
    return table


class GradcheckTable(Directive):
    has_content = False

    def run(self):
        import nnscratch as nn
        from nnscratch.gradcheck import TOLERANCE
        script = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "gradcheck_report.py"
        spec = importlib.util.spec_from_file_location("gradcheck_report", script)
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
            reports = list(module.components(nn.Backend("numpy", "float64", seed=0)))
        except (OSError, AttributeError) as err:
            raise self.error(f"gradcheck-table: cannot run {script}: {err}")
        rows = []
        for name, report in reports:
            worst = max(report, key=report.get)
            rows.append((name, f"{report[worst]:.1e}", worst,
                         "pass" if report[worst] <= TOLERANCE else "FAIL"))
        return [_table(("component", "worst relative error", "in", f"<= {TOLERANCE:g}"),
                       rows, (30, 18, 10, 10))]


class DatasetTable(Directive):
    has_content = False

    def run(self):
        from nnscratch.datasets.registry import EMBEDDED, REGISTRY
        rows = [(name, info.title, info.license, ", ".join(info.mirrors))
                for name, info in REGISTRY.items()]
        rows.append((EMBEDDED, "6,000 + 1,000 Fashion-MNIST images shipped in the package",
                     "MIT (Fashion-MNIST)", "none needed"))
        return [_table(("name", "dataset", "licence", "mirrors, in order"), rows,
                       (14, 30, 20, 36))]


DOCS = pathlib.Path(__file__).resolve().parents[1]
DEFINED = re.compile(r"\$\$[^$]+\$\$[ \t]*\(([a-z][a-z0-9]*-\d+)\)")
# a citation "(dense-1)" or a bare "eq. dense-1" / "dense-2 to dense-4", or a literal / inline
# math span / role, which is left alone
TOKEN = re.compile(r"``.*?``|:[a-z:]+:`[^`]*`"
                   r"|\((?P<label>[a-z][a-z0-9]*-\d+)\)"
                   r"|(?<![\w-])(?P<bare>[a-z][a-z0-9]*-\d+)(?![\w-])")


@functools.lru_cache(maxsize=None)
def _labels():
    return {label for page in DOCS.glob("*.md") for label in DEFINED.findall(page.read_text())}


def _link_citations(app, what, name, obj, options, lines, labels=None):
    """``(dense-1)`` or ``eq. dense-1`` in a docstring -> :eq:`dense-1`, outside literals
    and math."""
    labels = _labels() if labels is None else labels
    in_math, math_indent = False, 0
    for i, line in enumerate(lines):
        indent = len(line) - len(line.lstrip())
        if in_math and line.strip() and indent <= math_indent:
            in_math = False
        if line.lstrip().startswith(".. math::"):
            in_math, math_indent = True, indent
            continue
        if not in_math:
            lines[i] = TOKEN.sub(lambda m: _link(m, labels), line)


def _link(match, labels):
    label = match.group("label")
    if label and label in labels:
        return f":eq:`{label}`"
    bare = match.group("bare")
    if bare and bare in labels:
        return f":eq:`{bare}`"
    return match.group(0)


def link_docstring(lines, labels=None):
    """The docstring ``lines`` with every citation of a known label made a link, in place
    (what the API reference shows; ``tests/test_docs.py`` checks that none is left)."""
    _link_citations(None, None, None, None, None, lines, labels)
    return lines


def _label_as_number(app, doctree):
    for node in doctree.findall(nodes.math_block):
        if node.get("label"):
            node["number"] = node["label"]


def _label_as_reference_number(app, env):
    equations = env.get_domain("math").equations
    for label, (docname, _) in list(equations.items()):
        equations[label] = (docname, label)


# "Implemented by: {py:meth}`nnscratch.dense.Dense.forward`" links to the documentation of
# the function; a "[source]" link after it lands on its lines in the highlighted source that
# sphinx.ext.viewcode writes (``_modules/nnscratch/dense.html#Dense.forward``). A private
# helper (Adam's ``_update``) has no documentation entry, but gets its source anchor all
# the same: it is registered with viewcode here. Paragraphs inside a ``{container}
# source-links`` block get the same links.
IMPLEMENTED_BY = "Implemented by:"
SOURCE_LINKS = "source-links"


def _split_target(target):
    """``nnscratch.optim.Adam._update`` -> (``nnscratch.optim``, ``Adam._update``)."""
    import importlib
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        return ".".join(parts[:i]), ".".join(parts[i:])
    raise ValueError(target)


def _wants_source_links(para):
    """An "Implemented by:" paragraph, or any paragraph inside a ``source-links`` container
    (the algorithms of docs/training_step.md, one link per line)."""
    if para.astext().startswith(IMPLEMENTED_BY):
        return True
    node = para.parent
    while node is not None:
        if SOURCE_LINKS in node.get("classes", ()):
            return True
        node = node.parent
    return False


def _add_source_links(app, doctree):
    from sphinx.addnodes import pending_xref
    env = app.env
    for para in doctree.findall(nodes.paragraph):
        if not _wants_source_links(para):
            continue
        for xref in list(para.findall(pending_xref)):
            target = xref.get("reftarget", "").lstrip("~")
            if xref.get("refdomain") != "py" or not target.startswith("nnscratch."):
                continue
            modname, fullname = _split_target(target)
            link = nodes.reference("", "", internal=True, classes=["source-link"])
            link += nodes.inline(text="[source]")
            link["nnscratch_source"] = (modname, fullname)
            parent = xref.parent
            parent.insert(parent.index(xref) + 1, link)
            parent.insert(parent.index(xref) + 1, nodes.Text(" "))
            wanted = env.__dict__.setdefault("nnscratch_source_targets", {})
            wanted[(modname, fullname)] = env.docname


def _register_source_targets(app, env):
    """Give each linked private helper an anchor on its viewcode page (run once all pages
    are read, when viewcode knows every module); a target viewcode cannot find is a
    warning, so an error under -W."""
    from sphinx.util import logging
    logger = logging.getLogger(__name__)
    modules = getattr(env, "_viewcode_modules", {})
    for (modname, fullname), docname in getattr(env, "nnscratch_source_targets", {}).items():
        entry = modules.get(modname)
        if not entry or fullname not in entry[1]:
            logger.warning(f"source link: no source for {modname}.{fullname}",
                           location=docname)
            continue
        entry[2].setdefault(fullname, docname)


def _resolve_source_links(app, doctree, docname):
    for link in doctree.findall(nodes.reference):
        if "nnscratch_source" in link:
            modname, fullname = link["nnscratch_source"]
            page = "_modules/" + modname.replace(".", "/")
            try:
                uri = app.builder.get_relative_uri(docname, page)
            except Exception:          # a builder without pages (linkcheck, text...)
                uri = page
            link["refuri"] = f"{uri}#{fullname}"
            del link["nnscratch_source"]


def setup(app):
    app.connect("doctree-read", _add_source_links)
    app.connect("env-check-consistency", _register_source_targets)
    app.connect("doctree-resolved", _resolve_source_links)
    app.connect("autodoc-process-docstring", _link_citations)
    app.connect("doctree-read", _label_as_number)
    app.connect("env-check-consistency", _label_as_reference_number)
    app.add_directive("cli-help", CliHelp)
    app.add_directive("dataset-table", DatasetTable)
    app.add_directive("gradcheck-table", GradcheckTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
