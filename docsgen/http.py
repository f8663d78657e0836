"""Pages of the HTTP API, rendered from the OpenAPI document the app serves at ``/openapi.json``.

One page per route group (the operation's first tag; untagged routes go to ``other``), one page
of shapes (the document's schemas) and one of error codes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from docsgen.tables import cell, errors_table

METHODS = ("get", "head", "post", "put", "patch", "delete", "options")
UNTAGGED = "other"
GROUP_TITLES = {"health": "Health", "auth": "Auth", "images": "Images", "tags": "Tags"}


def openapi_document() -> dict[str, Any]:
    """The document ``GET /openapi.json`` answers with (the same bytes, parsed)."""
    from chitram_falcon.openapi import spec_bytes

    document: dict[str, Any] = json.loads(spec_bytes())
    return document


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    """(group, METHOD, path, operation) of every route, in the document's order."""
    for path, item in document["paths"].items():
        for method in METHODS:
            operation = item.get(method)
            if isinstance(operation, dict):
                tags = operation.get("tags") or [UNTAGGED]
                yield tags[0], method.upper(), path, operation


def groups(document: dict[str, Any]) -> dict[str, list[tuple[str, str, dict[str, Any]]]]:
    """Route group -> its (METHOD, path, operation)."""
    out: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for group, method, path, operation in operations(document):
        out.setdefault(group, []).append((method, path, operation))
    return out


def group_title(group: str) -> str:
    """A route group's page title."""
    return GROUP_TITLES.get(group, group.replace("-", " ").replace("_", " ").capitalize())


def _schema_text(schema: dict[str, Any] | None, page_prefix: str = "") -> str:
    if not schema:
        return "any"
    ref = schema.get("$ref")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return f"[`{name}`]({page_prefix}shapes.md#{name.lower()})"
    kind = schema.get("type")
    if kind == "array":
        return f"array of {_schema_text(schema.get('items'), page_prefix)}"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_schema_text(s, page_prefix) for s in schema[key])
    if isinstance(kind, list):
        text = " or ".join(f"`{k}`" for k in kind)
    elif kind:
        text = f"`{kind}`"
    else:
        text = "any"
    if schema.get("format"):
        text += f" ({schema['format']})"
    if kind == "object" and schema.get("properties"):
        text += " {" + ", ".join(f"`{name}`" for name in schema["properties"]) + "}"
    return text


def _constraints(schema: dict[str, Any]) -> str:
    parts = []
    for key in ("minimum", "maximum", "minLength", "maxLength", "pattern", "default"):
        if key in schema:
            parts.append(f"{key} `{schema[key]}`")
    return ", ".join(parts)


def _anchor(method: str, path: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in path.lower()).strip("-")
    return f"{method.lower()}-{slug}"


def _resolve(document: dict[str, Any], item: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ref = item.get("$ref")
    if not ref:
        return "", item
    name = ref.rsplit("/", 1)[-1]
    target: Any = document
    for part in ref.lstrip("#/").split("/"):
        target = target[part]
    return name, target


def _operation(document: dict[str, Any], method: str, path: str, op: dict[str, Any]) -> str:
    out = [f"## `{method} {path}` {{#{_anchor(method, path)}}}", ""]
    if op.get("summary"):
        out += [cell(op["summary"]) + ".", ""]
    if op.get("description"):
        out += [op["description"], ""]
    security = op.get("security", document.get("security"))
    if security is not None:
        if security == []:
            auth = "none"
        elif {} in security:
            auth = "optional bearer token"
        else:
            auth = "bearer token"
        out += [f"**Authentication:** {auth}. **Operation id:** `{op.get('operationId', '')}`.", ""]
    params = op.get("parameters") or []
    if params:
        out += ["| parameter | in | required | type | description |", "|---|---|---|---|---|"]
        for raw in params:
            _, param = _resolve(document, raw)
            schema = param.get("schema") or {}
            kind = _schema_text(schema)
            extra = _constraints(schema)
            text = cell(param.get("description", ""))
            if extra:
                text = f"{text} ({extra})" if text else extra
            required = "yes" if param.get("required") else "no"
            out.append(f"| `{param['name']}` | {param['in']} | {required} | {kind} | {text} |")
        out.append("")
    body = op.get("requestBody")
    if body:
        out += ["**Request body**" + (" (required)" if body.get("required") else "") + ":", ""]
        for media, content in body.get("content", {}).items():
            out.append(f"- `{media}`: {_schema_text(content.get('schema'))}")
        out.append("")
    out += ["| status | meaning | body | headers |", "|---|---|---|---|"]
    for status, raw in op.get("responses", {}).items():
        _, response = _resolve(document, raw)
        bodies = [
            f"`{media}` {_schema_text(content.get('schema'))}"
            for media, content in (response.get("content") or {}).items()
        ]
        shown = "<br>".join(bodies) if len(bodies) < 4 else f"{len(bodies)} media types"
        headers = ", ".join(f"`{h}`" for h in response.get("headers") or {})
        description = cell(response.get("description", ""))
        out.append(f"| {status} | {description} | {shown or 'none'} | {headers} |")
    out.append("")
    return "\n".join(out)


def group_page(document: dict[str, Any], group: str) -> str:
    """The Markdown page of one route group."""
    routes = groups(document)[group]
    out = [
        f"# {group_title(group)}",
        "",
        "Generated from the OpenAPI document the app serves at `/openapi.json`. Error answers "
        "have the body [`Error`](shapes.md#error); their codes are in [Errors](errors.md).",
        "",
        "| route | summary |",
        "|---|---|",
    ]
    for method, path, op in routes:
        out.append(f"| [`{method} {path}`](#{_anchor(method, path)}) | {cell(op.get('summary'))} |")
    out.append("")
    for method, path, op in routes:
        out.append(_operation(document, method, path, op))
    return "\n".join(out)


def shapes_page(document: dict[str, Any]) -> str:
    """Every schema of the document, with its properties."""
    out = ["# Shapes", "", "The JSON bodies of the HTTP API, from `/openapi.json`.", ""]
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        out += [f"## {name} {{#{name.lower()}}}", ""]
        if schema.get("description"):
            out += [schema["description"], ""]
        props = schema.get("properties")
        if not props:
            out += [f"Type: {_schema_text(schema)}.", ""]
            continue
        required = set(schema.get("required", []))
        out += ["| field | type | required | description |", "|---|---|---|---|"]
        for prop, prop_schema in props.items():
            extra = _constraints(prop_schema)
            text = cell(prop_schema.get("description", ""))
            if extra:
                text = f"{text} ({extra})" if text else extra
            req = "yes" if prop in required else "no"
            out.append(f"| `{prop}` | {_schema_text(prop_schema)} | {req} | {text} |")
        out.append("")
    headers = document.get("components", {}).get("headers", {})
    if headers:
        out += ["## Headers {#headers}", "", "| header | type | description |", "|---|---|---|"]
        for name, header in headers.items():
            kind = _schema_text(header.get("schema"))
            out.append(f"| `{name}` | {kind} | {cell(header.get('description', ''))} |")
        out.append("")
    return "\n".join(out)


def errors_page(document: dict[str, Any]) -> str:
    """Every error code, its status and the routes that can answer with that status."""
    statuses: dict[str, list[str]] = {}
    for _group, method, path, op in operations(document):
        for status in op.get("responses", {}):
            statuses.setdefault(status, []).append(f"`{method} {path}`")
    out = [
        "# Errors",
        "",
        'Every error answer has the body `{"detail": {"code", "message", "details"}}` '
        "([`Error`](shapes.md#error)). The code is stable API; the message is for people. "
        "Generated from `chitram_core.errors.ERRORS_BY_CODE`.",
        "",
        errors_table(),
        "## Routes by status",
        "",
        "| status | routes that may answer it |",
        "|---|---|",
    ]
    for status in sorted(statuses):
        if status.startswith(("4", "5")):
            out.append(f"| {status} | {', '.join(statuses[status])} |")
    out.append("")
    return "\n".join(out)


def index_page(document: dict[str, Any]) -> str:
    """The overview: info, groups and every route."""
    info = document.get("info", {})
    out = [
        "# HTTP API reference",
        "",
        f"{info.get('title', '')} {info.get('version', '')}, OpenAPI {document.get('openapi')}. "
        f"{info.get('description', '')}",
        "",
        "These pages are generated at build time from the document `GET /openapi.json` "
        "serves; the prose guide is [HTTP API](../../http-api.md).",
        "",
        "| group | route | summary |",
        "|---|---|---|",
    ]
    for group, method, path, op in operations(document):
        link = f"{group}.md#{_anchor(method, path)}"
        out.append(
            f"| [{group_title(group)}]({group}.md) | [`{method} {path}`]({link}) | "
            f"{cell(op.get('summary'))} |"
        )
    out += ["", "See also [Shapes](shapes.md) and [Errors](errors.md).", ""]
    return "\n".join(out)


def pages() -> dict[str, str]:
    """Path under ``docs/`` -> Markdown, for every generated HTTP page."""
    document = openapi_document()
    out = {"api/http/index.md": index_page(document)}
    for group in groups(document):
        out[f"api/http/{group}.md"] = group_page(document, group)
    out["api/http/shapes.md"] = shapes_page(document)
    out["api/http/errors.md"] = errors_page(document)
    return out
