"""Sphinx configuration of the nnscratch docs (build: ``make docs``, warnings are errors)."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

import executed_notebooks  # noqa: E402

executed_notebooks.stage()

project = "nnscratch"
author = "the nnscratch developers"
copyright = "2026, the nnscratch developers"
# MyST-NB is MyST-Parser plus notebooks: the pages are MyST markdown, and docs/executed/
# holds the chapters as `make notebooks` executed them (docs/_ext/executed_notebooks.py)
extensions = ["myst_nb", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax",
              "sphinx.ext.viewcode", "nnscratch_docs"]
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
# Figures are numbered ("Figure 3") and cited by name: {numref}`fig-gan-step`
numfig = True
myst_heading_anchors = 3
# Equations are numbered by their labels, "(dense-1)", not 1, 2, 3 (docs/_ext/nnscratch_docs.py)
math_numfig = False
math_eqref_format = "({number})"
source_suffix = {".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "_ext"]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
autodoc_mock_imports = ["cupy"]
html_theme = "alabaster"
html_static_path = ["_static"]
# MathJax ships with the docs (docs/_static/mathjax: MathJax 3.2.2's single-file TeX-to-SVG
# build with every TeX extension, Apache-2.0), so the built pages typeset their math with no
# network, opened from disk or served. SVG output needs no web fonts, which browsers refuse
# to load from file:// pages. `make docs-check` proves it in a headless browser.
mathjax_path = "mathjax/tex-svg-full.js"
suppress_warnings = ["myst.header"]

# A reference to nnscratch's own code that does not resolve is an error (with -W): every
# "Implemented by: {py:func}`nnscratch...`" must land on the function's documentation, so a
# renamed or undocumented function breaks the build instead of leaving a dead link. Types
# named in docstrings (numpy.ndarray, "optional", callable...) and private bases are not
# checked.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(?!nnscratch\.).*"),
    (r"py:.*", r"nnscratch\.(.*\.)?_\w+"),
]
