"""Sphinx configuration for the flask_gridauth docs."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "flask_gridauth"
author = "flask_gridauth developers"
copyright = "2026, flask_gridauth developers"  # noqa: A001 - Sphinx's name
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
nitpicky = False
