"""Sphinx helpers for the flask-tokenauth docs.

``confval`` is an object type, so ``:confval:`JWT_LEEWAY``` links to a key and
``-n`` fails on a key that does not exist. ``.. tokenauth-settings::`` renders
the configuration reference from ``flask_tokenauth.config.SECTIONS``: the
defaults and descriptions live in the code, and the docs cannot drift from it.
"""

from __future__ import annotations

from typing import Any, Dict, List

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


class SettingsDirective(SphinxDirective):
    """Every configuration key, grouped as ``config.SECTIONS`` groups them."""

    has_content = False

    def run(self) -> List[nodes.Node]:
        from flask_tokenauth.config import SECTIONS, shown_default

        lines: List[str] = []
        for title, settings in SECTIONS:
            lines += [title, "-" * len(title), ""]
            for setting in settings:
                lines += [
                    ".. confval:: %s" % setting.key,
                    "",
                    "   Default: %s" % shown_default(setting),
                    "",
                    "   %s" % setting.doc,
                    "",
                ]
        container = nodes.section()
        container.document = self.state.document
        nested_parse_with_titles(self.state, StringList(lines, source="flask_tokenauth/config.py"), container)
        return container.children


def setup(app: Sphinx) -> Dict[str, Any]:
    app.add_object_type("confval", "confval", "pair: %s; configuration key")
    app.add_directive("tokenauth-settings", SettingsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
