"""Sphinx configuration for flask-alerting."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "flask-alerting"
author = "flask-alerting developers"
copyright = "2026, flask-alerting developers"  # noqa: A001

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Flask, blinker and psutil have their own docs; linking to them would need the network.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
nitpicky = False
html_theme = "alabaster"
exclude_patterns = ["_build"]
