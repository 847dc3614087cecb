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
# a citation "(dense-1)", or a literal / inline math span, which is left alone
TOKEN = re.compile(r"``.*?``|:math:`[^`]*`|\((?P<label>[a-z][a-z0-9]*-\d+)\)")


@functools.lru_cache(maxsize=None)
def _labels():
    return {label for page in DOCS.glob("*.md") for label in DEFINED.findall(page.read_text())}


def _link_citations(app, what, name, obj, options, lines):
    """``(dense-1)`` in a docstring -> :eq:`dense-1`, outside literals and math."""
    labels = _labels()
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
    return f":eq:`{label}`" if label and label in labels else match.group(0)


def _label_as_number(app, doctree):
    for node in doctree.findall(nodes.math_block):
        if node.get("label"):
            node["number"] = node["label"]


def _label_as_reference_number(app, env):
    equations = env.get_domain("math").equations
    for label, (docname, _) in list(equations.items()):
        equations[label] = (docname, label)


def setup(app):
    app.connect("autodoc-process-docstring", _link_citations)
    app.connect("doctree-read", _label_as_number)
    app.connect("env-check-consistency", _label_as_reference_number)
    app.add_directive("cli-help", CliHelp)
    app.add_directive("dataset-table", DatasetTable)
    app.add_directive("gradcheck-table", GradcheckTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
