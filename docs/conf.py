"""Sphinx configuration for the cogen documentation.

Build with (from the repository root, after ``pip install -e '.[docs]'``)::

    sphinx-build -W -b html docs docs/_build/html
"""
from __future__ import annotations

import os
import sys

DOCS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DOCS)
# The package from this checkout (even when not installed) and the local extensions.
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(DOCS, "_ext"))

import cogen  # noqa: E402 (after the sys.path lines above, which make it importable)

project = "cogen"
author = "The cogen developers"
copyright = "the cogen developers"
release = cogen.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",     # the docstrings use "Args:" / "Raises:" sections
    "cogen_docs",              # docs/_ext/cogen_docs.py: the options table, guarded API pages
]

root_doc = master_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
html_theme_options = {
    "description": "Network programming with coroutines, and a WSGI server",
    "fixed_sidebar": True,
}
pygments_style = "sphinx"

# -- autodoc ----------------------------------------------------------------------------
autodoc_member_order = "bysource"
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
# Signatures show the annotations; the descriptions stay readable prose.
autodoc_typehints = "signature"
autoclass_content = "class"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
# "Attributes:" as fields of the class: autodoc documents the attributes themselves.
napoleon_use_ivar = True

# A reference to something the docs do not describe (a private helper, a
# stdlib type named in a docstring) is rendered as plain text, not a warning.
nitpicky = False
