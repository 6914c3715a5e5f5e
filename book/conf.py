"""Sphinx configuration of the course as a book: `make book`, into book/_build/html.

The source folder is the repository root (``sphinx-build -c book . book/_build/html``), so that
the lessons are read where they are committed, ``notebooks/``, with their stored outputs (no
re-execution), and the README's links to them resolve. Nothing is fetched at build or read time:
no intersphinx, MathJax served from the book, and a stored widget shown as a note.
"""

import re
import sys
from pathlib import Path

from docutils import nodes

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # autodoc documents this checkout's cnnlib

import cnnlib  # noqa: E402

project = "CNN backbones, hands on"
author = "the course's authors"
release = version = cnnlib.__version__

root_doc = "book/index"
include_patterns = ["book/**", "notebooks/0*.ipynb", "CONTRIBUTING.md", "benchmarks/README.md"]
exclude_patterns = ["book/_build", ".venv", "data", "exercises", "results",
                    "**/.ipynb_checkpoints"]

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # a local MathJax 3 in _static/mathjax, set as mathjax_path
]

# The committed outputs are the lessons' outputs: show them, never run a cell.
nb_execution_mode = "off"
# No ipywidgets JavaScript from a CDN: see replace_widget_views below.
nb_ipywidgets_js = {}
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

autosummary_generate = True
# matplotlib gives each Figure subclass its own generated set(), whose docstring is matplotlib's.
autodoc_default_options = {"members": True, "show-inheritance": True, "exclude-members": "set"}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "sphinx_book_theme"
html_title = project
html_extra_path = ["root"]  # index.html at the top of the output, pointing into the book
html_theme_options = {
    "use_download_button": False,
    "use_fullscreen_button": False,
    "show_toc_level": 2,
    "navigation_with_keys": True,
}
html_show_sourcelink = False


WIDGET_VIEW = 'type="application/vnd.jupyter.widget-view+json"'
WIDGET_SENTENCE = ("An interactive widget is shown here in JupyterLab. It moves only with a running "
                   "kernel, which recomputes what it shows, so a static page cannot embed it: open this "
                   "lesson in JupyterLab (make lab, or python tools/course.py lab) to use it.")


def replace_widget_views(app, doctree, docname):
    """A stored widget's sliders would move in a page but nothing would follow them (each update is
    a call into the kernel), so the book shows a note in the widget's place instead of its state."""
    for raw in list(doctree.findall(nodes.raw)):
        if WIDGET_VIEW in raw.astext():
            note = nodes.note()
            note += nodes.paragraph(text=WIDGET_SENTENCE)
            raw.replace_self(note)


def links_from_the_root(app, relative_path, parent_docname, content):
    """The README's relative links (``notebooks/00_start_here.ipynb``, ``CONTRIBUTING.md``) are
    written from the repository root; included into a page of book/, they are made root-absolute."""
    if Path(relative_path) == Path("README.md"):
        content[0] = re.sub(r"\]\((?![a-z][a-z0-9+.-]*:|#|/)", "](/", content[0])


def setup(app):
    app.connect("include-read", links_from_the_root)
    app.connect("doctree-resolved", replace_widget_views)
