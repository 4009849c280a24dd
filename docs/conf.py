"""Sphinx configuration of cdropout's documentation (built with warnings as errors)."""

import cdropout

project = "cdropout"
author = "the cdropout developers"
copyright = "2026, the cdropout developers"
release = cdropout.__version__
version = release

extensions = ["sphinx.ext.autodoc", "numpydoc", "myst_parser"]
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
# the guides include sections of the README, whose headings start below the page's
suppress_warnings = ["myst.header"]
numpydoc_show_class_members = False
autodoc_typehints = "none"  # the signatures are in the docstrings' Parameters
html_theme = "alabaster"
