"""A griffe extension: Sphinx roles in docstrings (``:class:`X```, ``:meth:`~a.b```) become
code spans, so the reST-flavoured docstrings of the code render as Markdown."""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|data|mod|exc|obj|const):`~?([^`]+)`")
DOUBLE = re.compile(r"``([^`]+)``")


def markdown_of(text: str) -> str:
    """``text`` with roles as code spans (``~a.b.c`` shown as ``c``) and ````x```` as ```x```."""
    text = ROLE.sub(lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    return DOUBLE.sub(lambda m: f"`{m.group(1)}`", text)


class SphinxRoles(griffe.Extension):
    """Rewrites every docstring as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_of(obj.docstring.value)
