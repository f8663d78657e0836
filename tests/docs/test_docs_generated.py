"""The generated parts of the documentation site follow the code: every setting has a
description, every public name and plugin protocol has an API page and complete docstrings,
every route group has a page, and every route, error code and metric is listed."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import yaml

import chitram_core
from chitram_core.errors import ERRORS_BY_CODE
from chitram_core.settings import Settings
from docsgen import docstrings, http, reference, tables
from docsgen.hooks import generated_pages

ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_has_a_description() -> None:
    descriptions = tables.setting_descriptions()
    assert set(descriptions) == {field.name for field in attrs.fields(Settings)}
    undocumented = sorted(name for name, text in descriptions.items() if not text)
    assert not undocumented, (
        "settings with no attribute docstring (add a one-line docstring right after the field "
        f"in chitram_core/settings.py): {undocumented}"
    )


def test_the_settings_table_has_a_row_per_setting_with_its_description() -> None:
    table = tables.settings_table()
    for field in attrs.fields(Settings):
        row = next(line for line in table.splitlines() if f"`CHITRAM_{field.name.upper()}`" in line)
        description = " ".join(tables.setting_descriptions()[field.name].split())
        assert description in row.replace("\\|", "|")


def test_the_public_api_is_documented() -> None:
    missing = docstrings.missing_docstrings()
    assert not missing, f"public objects without a docstring: {missing}"


def test_the_docstring_check_finds_a_missing_docstring() -> None:
    # Models have docstrings on every field; one without must be reported.
    missing: list[str] = []
    settings = reference.lookup("chitram_core.settings.Settings")
    field = settings.members["env"]
    saved = field.docstring
    field.docstring = None
    try:
        docstrings._walk(settings, True, missing)
    finally:
        field.docstring = saved
    assert missing == ["chitram_core.settings.Settings.env"]


def test_an_api_page_per_public_name_and_plugin_protocol() -> None:
    pages = generated_pages()
    for name in chitram_core.__all__:
        page = pages[f"api/python/{name}.md"]
        assert re.search(rf"^::: chitram_core\.[\w.]*\b{name}$", page, re.M), page
    protocols = reference.plugin_protocols()
    assert {"chitram.storage", "chitram.auth", "chitram.cache", "chitram.taggers"} <= set(protocols)
    for paths in protocols.values():
        for path in paths:
            assert f"::: {path}\n" in pages[f"api/python/plugins/{path.rpartition('.')[2]}.md"]


def test_a_page_per_route_group_listing_every_route() -> None:
    document = http.openapi_document()
    pages = generated_pages()
    count = 0
    for group, method, path, _operation in http.operations(document):
        assert f"## `{method} {path}`" in pages[f"api/http/{group}.md"]
        count += 1
    assert count == sum(1 for item in document["paths"].values() for m in http.METHODS if m in item)
    assert {"health", "auth", "images", "tags"} <= set(http.groups(document))


def test_every_error_code_and_schema_is_on_the_site() -> None:
    pages = generated_pages()
    for code, cls in ERRORS_BY_CODE.items():
        assert f"`{code}` | {cls.status} |" in pages["api/http/errors.md"]
    for name in http.openapi_document()["components"]["schemas"]:
        assert f"## {name} {{#{name.lower()}}}" in pages["api/http/shapes.md"]


def test_every_metric_is_in_the_metrics_table() -> None:
    from prometheus_client import CollectorRegistry

    from chitram_core import metrics

    registry = CollectorRegistry()
    metrics.observer(registry)
    scraped = {metric.name for metric in registry.collect()}
    table = generated_pages()["operations/metrics.md"]
    for name in scraped:
        assert re.search(rf"`{name}(_total)?`", table), name
    assert len(tables.metric_rows()) == len(scraped)


def test_the_navigation_reaches_every_generated_page() -> None:
    from docsgen.hooks import _expand

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _expand(config["nav"])

    def paths(items: object) -> set[str]:
        if isinstance(items, list):
            return set().union(*(paths(item) for item in items))
        if isinstance(items, dict):
            return set().union(*(paths(value) for value in items.values()))
        return {str(items)}

    linked = paths(nav)
    assert set(generated_pages()) <= linked
    for path in linked - set(generated_pages()):
        assert (ROOT / "docs" / path).is_file(), path
