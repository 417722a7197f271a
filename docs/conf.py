"""Sphinx configuration of the flask-tokenauth documentation."""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

import flask_tokenauth  # noqa: E402

project = "flask-tokenauth"
author = "The flask-tokenauth developers"
copyright = "2026, %s" % author
release = flask_tokenauth.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "tokenauth_docs",
]

html_theme = "furo"
html_title = "flask-tokenauth %s" % release
exclude_patterns = ["_build"]
nitpicky = True
default_role = "literal"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

# Links into Python's, Flask's and Werkzeug's docs need their inventories,
# which only a machine with network access (Read the Docs) can fetch. The CI
# build is offline: there, names from those projects are left unlinked.
if os.environ.get("READTHEDOCS"):
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "flask": ("https://flask.palletsprojects.com/en/stable/", None),
        "werkzeug": ("https://werkzeug.palletsprojects.com/en/stable/", None),
    }
else:
    intersphinx_mapping = {}

# Outside projects' classes named in type hints: linked on Read the Docs
# through intersphinx, unlinked (but not errors) offline.
nitpick_ignore_regex = [
    ("py:class", r"(flask|werkzeug|jwt|redis|blinker|click|limits|typing|collections\.abc)(\..*)?"),
    ("py:class", r"(Flask|Response|Mapping|Callable|Iterable|Sequence|Any|Optional|Union|C|T)"),
    ("py:class", r"(datetime|timedelta|NamedTuple|Exception|RuntimeError)(\..*)?"),
    ("py:obj", r"(typing|flask|werkzeug)\..*"),
    ("py:class", r"flask_tokenauth\.[a-z_.]+\.[CT]"),  # type variables of decorators
]
