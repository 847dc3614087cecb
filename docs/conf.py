"""Sphinx configuration of the nnscratch docs (build: ``make docs``, warnings are errors)."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

import chapters  # noqa: E402

# docs/chapters/: the committed executed notebooks whose stamp matches their source, and a
# page saying why for any other chapter of the navigation (docs/_ext/chapters.py)
chapters.stage()

project = "nnscratch"
author = "the nnscratch developers"
copyright = "2026, the nnscratch developers"
# MyST-NB is MyST-Parser plus notebooks: the pages are MyST markdown, and docs/chapters/
# holds the chapters as `make notebooks` executed them; MyST-NB executes nothing
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
# A textbook layout: the parts in a left sidebar in reading order, the page's sections on the
# right. Its fonts and icons ship with the theme (no remote asset: `make docs-check`).
html_theme = "sphinx_book_theme"
html_title = "nnscratch: GANs and VAEs from scratch"
html_theme_options = {
    "home_page_in_toc": True,
    "show_navbar_depth": 1,
    "show_toc_level": 2,
    "use_download_button": True,
    # the landing page is one section: its width goes to the reading path and its picture
    "secondary_sidebar_items": {"**": ["page-toc"], "index": []},
}
html_static_path = ["_static"]
html_css_files = ["nnscratch.css"]
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
