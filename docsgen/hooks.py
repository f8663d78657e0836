"""mkdocs hooks (``hooks:`` in mkdocs.yml): add the generated pages and their navigation.

- ``on_config``: a navigation entry whose value is ``generated/http`` or ``generated/python``
  becomes the list of generated pages of that kind.
- ``on_files``: every generated page joins the site as a file of its own (nothing is written
  into ``docs/``), and the pages that embed a generated table get it where they say
  ``<!-- generated: NAME -->``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # mkdocs loads this file by path; the package needs its root
    sys.path.insert(0, str(ROOT))

from mkdocs.config.defaults import MkDocsConfig  # noqa: E402
from mkdocs.structure.files import File, Files  # noqa: E402
from mkdocs.structure.pages import Page  # noqa: E402

from docsgen import http, reference, tables  # noqa: E402

_PAGES: dict[str, str] = {}


def generated_pages() -> dict[str, str]:
    """Every generated page: path under ``docs/`` -> Markdown."""
    if not _PAGES:
        _PAGES.update(http.pages())
        _PAGES.update(reference.pages())
        _PAGES["operations/settings.md"] = (
            "# Settings reference\n\nEvery field of "
            "[`Settings`][chitram_core.settings.Settings], read from its `CHITRAM_*` variable "
            "(see [Operations](../operations.md#configuration) for the value syntax). "
            "Generated from the fields and their docstrings.\n\n" + tables.settings_table()
        )
        _PAGES["operations/metrics.md"] = (
            "# Metrics reference\n\nEvery Prometheus metric Chitram records (with "
            "`CHITRAM_METRICS_ADDRESS` set, or `chitram_core.metrics.observer()` passed to "
            "`Chitram`). Generated from the collectors the observer registers; what to do about "
            "them is in [Operations](../operations.md#metrics).\n\n" + tables.metrics_table()
        )
        changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
        _PAGES["changelog.md"] = changelog.replace("](docs/", "](")
    return _PAGES


def _http_nav() -> list[dict[str, str]]:
    document = http.openapi_document()
    entries = [{"Overview": "api/http/index.md"}]
    entries += [{http.group_title(g): f"api/http/{g}.md"} for g in http.groups(document)]
    entries += [{"Shapes": "api/http/shapes.md"}, {"Errors": "api/http/errors.md"}]
    return entries


def _expand(items: Any) -> Any:
    if isinstance(items, list):
        return [_expand(item) for item in items]
    if isinstance(items, dict):
        out = {}
        for title, value in items.items():
            if value == "generated/http":
                out[title] = _http_nav()
            elif value == "generated/python":
                out[title] = reference.nav()
            else:
                out[title] = _expand(value)
        return out
    return items


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Expand the generated navigation entries."""
    config["nav"] = _expand(config["nav"])
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages."""
    for path, content in generated_pages().items():
        files.append(File.generated(config, path, content=content))
    return files


_OUTSIDE = re.compile(r"\]\(\.\./([^)#\s]+)((?:#[^)\s]*)?)\)")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **kwargs: Any) -> str:
    """Put a generated table where a hand-written page asks for it, and point links from
    ``docs/*.md`` to files outside ``docs/`` (``../examples/...``) at the repository."""
    if "/" not in page.file.src_uri and page.file.src_uri not in generated_pages():
        repo = (config.repo_url or "").rstrip("/")
        markdown = _OUTSIDE.sub(lambda m: f"]({repo}/blob/main/{m.group(1)}{m.group(2)})", markdown)
    replacements = {
        "<!-- generated: settings -->": tables.settings_table,
        "<!-- generated: metrics -->": tables.metrics_table,
        "<!-- generated: errors -->": tables.errors_table,
    }
    for marker, make in replacements.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown
