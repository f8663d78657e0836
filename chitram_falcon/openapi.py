"""``/openapi.json``: an OpenAPI 3.1 description of what this app really serves.

Written by hand next to the resources and kept honest by a schemathesis run in
tests/http/test_openapi.py (every documented response must conform; nothing may answer 5xx).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import falcon
import falcon.asgi

from chitram_core.auth.api_tokens import SCOPES
from chitram_core.auth.rules import MAX_EMAIL_LENGTH, MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from chitram_core.chitram import VERSION
from chitram_core.errors import ERRORS_BY_CODE

JSON = "application/json"
IMAGE_TYPES = ["image/jpeg", "image/png", "image/gif", "image/webp"]
THUMBNAIL_TYPES = ["image/jpeg", "image/webp", "image/png"]

ERROR_CODES = list(ERRORS_BY_CODE)
"""Every error code, from chitram_core.errors (never copied here)."""


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(
    schema: dict[str, Any], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        out["headers"] = headers
    return out


def _error(description: str, headers: list[str] | None = None) -> dict[str, Any]:
    return _json(
        _ref("Error"),
        description,
        {h: {"$ref": f"#/components/headers/{h}"} for h in headers or []},
    )


def _errors(*statuses: int) -> dict[str, Any]:
    known = {
        400: _error("Invalid request (see detail.code)"),
        401: _error(
            "Missing, invalid or expired bearer token, or wrong credentials", ["WWW-Authenticate"]
        ),
        403: _error(
            "Not allowed (FORBIDDEN, DELETE_TOKEN_REQUIRED, INVALID_DELETE_TOKEN, "
            "INSUFFICIENT_SCOPE)"
        ),
        404: _error("Not found"),
        413: _error("Body or file too large (FILE_TOO_LARGE), or over the quota (QUOTA_EXCEEDED)"),
        416: _error("Range not satisfiable", ["Content-Range"]),
        422: _error("Validation error"),
        429: _error(
            "Rate limit exceeded", ["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining"]
        ),
        502: _error("The remote server failed (FETCH_FAILED)"),
        503: _error("Service or auth provider unavailable", ["Retry-After"]),
    }
    return {str(s): known[s] for s in statuses}


_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
_OPTIONAL_BEARER: list[dict[str, list[str]]] = [{}, {"bearer": []}]
_IMAGE_ID = {
    "name": "image_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "The image's UUID; anything else is simply not found (404 IMAGE_NOT_FOUND)",
}
_RATE_HEADERS = {
    "X-RateLimit-Limit": {"$ref": "#/components/headers/X-RateLimit-Limit"},
    "X-RateLimit-Remaining": {"$ref": "#/components/headers/X-RateLimit-Remaining"},
}


def _credentials_body(
    user_field: str, with_form: bool, *, new_account: bool = False
) -> dict[str, Any]:
    """An email (or username) and password body; for a new account, with the constraints the
    server enforces (422 past them; at login a password out of range is simply wrong)."""
    user: dict[str, Any] = {"type": "string"}
    password: dict[str, Any] = {"type": "string"}
    if new_account:
        user.update(format="email", maxLength=MAX_EMAIL_LENGTH)
        password.update(minLength=MIN_PASSWORD_LENGTH, maxLength=MAX_PASSWORD_LENGTH)
    schema = {
        "type": "object",
        "required": [user_field, "password"],
        "properties": {user_field: user, "password": password},
    }
    content: dict[str, Any] = {JSON: {"schema": schema}}
    if with_form:
        content = {
            "application/x-www-form-urlencoded": {"schema": schema},
            JSON: {"schema": schema},
        }
    return {"required": True, "content": content}


def _binary(kind: str, types: list[str], *, ranges: bool) -> dict[str, Any]:
    headers = {
        name: {"$ref": f"#/components/headers/{name}"}
        for name in (
            "ETag",
            "Cache-Control",
            "Accept-Ranges",
            "X-Content-Type-Options",
            "Content-Security-Policy",
            "Content-Disposition",
        )
    }
    body = {t: {"schema": {"type": "string", "format": "binary"}} for t in types}
    responses: dict[str, Any] = {
        "200": {"description": f"The {kind}", "headers": headers, "content": body},
        "304": {
            "description": "Not modified (If-None-Match matched the ETag)",
            "headers": {"ETag": headers["ETag"]},
        },
    }
    if ranges:
        responses["206"] = {
            "description": "One byte range of the file",
            "headers": {**headers, "Content-Range": {"$ref": "#/components/headers/Content-Range"}},
            "content": body,
        }
    responses.update(_errors(401, 404, 416, 503))
    return responses


_CONDITIONAL = [
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
    {
        "name": "Range",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "A single range, `bytes=start-end`, `bytes=start-` or `bytes=-suffix`",
    },
    {"name": "If-Range", "in": "header", "required": False, "schema": {"type": "string"}},
]


def _binary_ops(kind: str, types: list[str], summary: str) -> dict[str, Any]:
    responses = _binary(kind, types, ranges=True)
    op: dict[str, Any] = {
        "summary": summary,
        "security": _OPTIONAL_BEARER,
        "parameters": [_IMAGE_ID, *_CONDITIONAL],
        "responses": responses,
    }
    head = {
        **op,
        "summary": f"{summary} (headers only)",
        "operationId": f"head_{kind}",
        "responses": {
            code: {k: v for k, v in r.items() if k != "content"} for code, r in responses.items()
        },
    }
    return {"get": {**op, "operationId": f"get_{kind}"}, "head": head}


# variants (docs/http-api.md#variants)
VARIANT_TYPES = ["image/jpeg", "image/png", "image/webp", "image/avif"]


def _variant_ops(tags: Any) -> dict[str, Any]:
    params = [
        {
            "name": "spec",
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": 64},
            "description": "`-`-joined, in this order: `w<N>`, `h<N>`, `cover` (default "
            "contain), `jpeg|png|webp|avif|auto`, `q<N>`; e.g. `w640-h480-cover-webp-q80`",
        },
        {
            "name": "sig",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "base64url (no padding) HMAC-SHA256 of `{id}/{spec}`; not needed "
            "for a preset (CHITRAM_VARIANT_PRESETS)",
        },
        {"name": "Accept", "in": "header", "required": False, "schema": {"type": "string"}},
    ]
    ops = _binary_ops("variant", VARIANT_TYPES, "A resized/re-encoded variant (made on demand)")
    out = {}
    for key, op in ops.items():
        responses = {**op["responses"], **_errors(400, 403)}
        if key == "head":
            responses = {
                code: {k: v for k, v in r.items() if k != "content"}
                for code, r in responses.items()
            }
        out[key] = {
            **op,
            "tags": tags,
            "parameters": [*op["parameters"], *params],
            "responses": responses,
        }
    return out


def _schemas() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time"}
    check: dict[str, Any] = {
        "type": "object",
        "required": ["status", "latency_ms", "detail"],
        "properties": {
            "status": {"enum": ["healthy", "degraded", "unhealthy"]},
            "latency_ms": {"type": ["number", "null"]},
            "detail": {"type": ["string", "null"]},
        },
    }
    return {
        "Error": {
            "type": "object",
            "required": ["detail"],
            "properties": {
                "detail": {
                    "type": "object",
                    "required": ["code", "message", "details"],
                    "properties": {
                        "code": {"type": "string", "enum": ERROR_CODES},
                        "message": {"type": "string"},
                        "details": {"type": "object"},
                    },
                }
            },
        },
        "User": {
            "type": "object",
            "required": ["id", "email", "is_active", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string"},
                "is_active": {"type": "boolean"},
                "created_at": timestamp,
            },
        },
        "AuthResponse": {
            "type": "object",
            "required": ["user", "access_token", "token_type", "refresh_token", "expires_in"],
            "properties": {
                "user": _ref("User"),
                "access_token": {"type": "string"},
                "token_type": {"const": "bearer"},
                "refresh_token": {"type": "string"},
                "expires_in": {"type": "integer"},
            },
        },
        "OAuthStart": {
            "type": "object",
            "required": ["url", "provider", "state", "redirect_to"],
            "properties": {
                "url": {"type": "string"},
                "provider": {"type": "string"},
                "state": {"type": "string"},
                "redirect_to": {"type": "string"},
                "code_verifier": {"type": "string"},
            },
        },
        "Token": {
            "type": "object",
            "required": ["access_token", "token_type"],
            "properties": {"access_token": {"type": "string"}, "token_type": {"const": "bearer"}},
        },
        "Message": {
            "type": "object",
            "required": ["message"],
            "properties": {"message": {"type": "string"}},
        },
        "Image": {
            "type": "object",
            "required": [
                "id",
                "filename",
                "content_type",
                "file_size",
                "width",
                "height",
                "sha256",
                "created_at",
                "url",
                "thumbnail_ready",
                "thumbnail_url",
                "delete_token",
                "blurhash",
                "dominant_color",
            ],
            "properties": {
                "id": {"type": "string", "format": "uuid"},
                "filename": {"type": "string"},
                "content_type": {"enum": IMAGE_TYPES},
                "file_size": {"type": "integer", "minimum": 1},
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "created_at": timestamp,
                "url": {"type": "string"},
                "thumbnail_ready": {"type": "boolean"},
                "thumbnail_url": {"type": "string"},
                "delete_token": {
                    "type": ["string", "null"],
                    "description": "Only in the upload response of an anonymous upload",
                },
                "blurhash": {
                    "type": ["string", "null"],
                    "description": "BlurHash placeholder (4x3 components); null until computed",
                },
                "dominant_color": {
                    "type": ["string", "null"],
                    "pattern": "^#[0-9a-f]{6}$",
                    "description": "Placeholder colour; null until computed",
                },
            },
        },
        "Page": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref("Image")},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "Health": {
            "type": "object",
            "required": [
                "status",
                "version",
                "database",
                "storage",
                "cache",
                "rate_limiter",
                "upload_concurrency",
                "checks",
            ],
            "properties": {
                "status": {"enum": ["healthy", "degraded", "unhealthy"]},
                "version": {"type": "string"},
                "database": {"type": "string"},
                "storage": {"type": "string"},
                "cache": {"type": "string"},
                "rate_limiter": {"type": "string"},
                "upload_concurrency": {
                    "type": "object",
                    "additionalProperties": {"type": "integer"},
                },
                "checks": {"type": "object", "additionalProperties": check},
                "image_formats": {"type": "array", "items": {"type": "string"}},
            },
        },
        "Readiness": {
            "type": "object",
            "required": ["status", "database", "storage"],
            "properties": {
                "status": {"enum": ["ready", "not_ready"]},
                "database": {"type": "string"},
                "storage": {"type": "string"},
            },
        },
    }


def _headers() -> dict[str, Any]:
    def h(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"description": description, "schema": schema or {"type": "string"}}

    return {
        "WWW-Authenticate": h(
            '`Bearer realm="chitram"`, with `error="invalid_token"` for a bad or expired token'
        ),
        "Retry-After": h("Seconds to wait before retrying", {"type": "integer"}),
        "X-RateLimit-Limit": h("Events allowed per window", {"type": "integer"}),
        "X-RateLimit-Remaining": h("Events left in the window", {"type": "integer"}),
        "X-Cache": h(
            "Whether the metadata came from the cache", {"enum": ["HIT", "MISS", "DISABLED"]}
        ),
        "ETag": h("Strong validator: the SHA-256 of the bytes, quoted"),
        "Cache-Control": h("`public, max-age=31536000, immutable`"),
        "Accept-Ranges": h("`bytes`"),
        "Content-Range": h("`bytes start-end/size`, or `bytes */size` with 416"),
        "X-Content-Type-Options": h("`nosniff`"),
        "Content-Security-Policy": h("`default-src 'none'; style-src 'unsafe-inline'; sandbox`"),
        "Content-Disposition": h("`inline; filename=\"<ascii>\"; filename*=UTF-8''<utf-8>`"),
        "Location": h("The new image's metadata URL"),
    }


def build_spec() -> dict[str, Any]:
    """The whole document, as a dict."""
    api = "/api/v1"
    auth_tag, image_tag, health_tag = ["auth"], ["images"], ["health"]
    spec: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Chitram",
            "version": VERSION,
            "description": "Image hosting: the Chitram v1 API. Every error has the body "
            '`{"detail": {"code", "message", "details"}}`.',
        },
        "paths": {
            "/health": {
                "get": {
                    "tags": health_tag,
                    "operationId": "health",
                    "summary": "Every dependency probed",
                    "responses": {
                        "200": _json(_ref("Health"), "Healthy or degraded"),
                        "503": _json(_ref("Health"), "Unhealthy (database or storage down)"),
                    },
                }
            },
            "/health/live": {
                "get": {
                    "tags": health_tag,
                    "operationId": "live",
                    "summary": "Liveness",
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "required": ["status"],
                                "properties": {"status": {"const": "alive"}},
                            },
                            "The process answers",
                        )
                    },
                }
            },
            "/health/ready": {
                "get": {
                    "tags": health_tag,
                    "operationId": "ready",
                    "summary": "Readiness",
                    "responses": {
                        "200": _json(_ref("Readiness"), "Ready"),
                        "503": _json(_ref("Readiness"), "Not ready"),
                    },
                }
            },
            f"{api}/auth/register": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "register",
                    "summary": "Create an account",
                    "requestBody": _credentials_body("email", with_form=False, new_account=True),
                    "responses": {
                        "201": _json(
                            _ref("AuthResponse"), "Registered and logged in", _RATE_HEADERS
                        ),
                        **_errors(400, 413, 422, 429, 503),
                    },
                }
            },
            f"{api}/auth/login": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "login",
                    "summary": "Log in",
                    "requestBody": _credentials_body("email", with_form=False),
                    "responses": {
                        "200": _json(_ref("AuthResponse"), "Logged in", _RATE_HEADERS),
                        **_errors(401, 413, 422, 429, 503),
                    },
                }
            },
            f"{api}/auth/token": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "token",
                    "summary": "OAuth2 password flow (form fields username, password)",
                    "requestBody": _credentials_body("username", with_form=True),
                    "responses": {
                        "200": _json(_ref("Token"), "An access token", _RATE_HEADERS),
                        **_errors(401, 413, 422, 429, 503),
                    },
                }
            },
            f"{api}/auth/refresh": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "refresh",
                    "summary": "A new session for a refresh token (rotates it)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["refresh_token"],
                                    "properties": {"refresh_token": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_ref("AuthResponse"), "Refreshed"),
                        **_errors(401, 413, 422, 503),
                    },
                }
            },
            f"{api}/auth/logout": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "logout",
                    "security": _BEARER,
                    "summary": "Revoke the session (and the refresh token, if sent)",
                    "requestBody": {
                        "required": False,
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "properties": {"refresh_token": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "204": {"description": "Logged out"},
                        **_errors(401, 413, 422, 503),
                    },
                }
            },
            f"{api}/auth/me": {
                "get": {
                    "tags": auth_tag,
                    "operationId": "me",
                    "security": _BEARER,
                    "summary": "The caller's account",
                    "responses": {"200": _json(_ref("User"), "The user"), **_errors(401, 404, 503)},
                }
            },
            f"{api}/auth/password-reset": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "password_reset",
                    "summary": "Start a password reset (same answer for any email)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["email"],
                                    "properties": {"email": {"type": "string"}},
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json(_ref("Message"), "Accepted"),
                        **_errors(413, 422, 429, 503),
                    },
                }
            },
            f"{api}/images/upload": {
                "post": {
                    "tags": image_tag,
                    "operationId": "upload",
                    "security": _OPTIONAL_BEARER,
                    "summary": "Upload an image (bearer required unless anonymous uploads are on)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {"file": {"type": "string", "format": "binary"}},
                                },
                            }
                        },
                    },
                    "responses": {
                        "201": _json(
                            _ref("Image"),
                            "Stored",
                            {
                                **_RATE_HEADERS,
                                "Location": {"$ref": "#/components/headers/Location"},
                            },
                        ),
                        **_errors(400, 401, 413, 422, 429, 503),
                    },
                }
            },
            f"{api}/images/upload-url": {
                "post": {
                    "tags": image_tag,
                    "operationId": "upload_from_url",
                    "security": _OPTIONAL_BEARER,
                    "summary": "Upload the image a URL answers with (fetched by the server)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["url"],
                                    "properties": {"url": {"type": "string", "format": "uri"}},
                                },
                            }
                        },
                    },
                    "responses": {
                        "201": _json(
                            _ref("Image"),
                            "Stored",
                            {
                                **_RATE_HEADERS,
                                "Location": {"$ref": "#/components/headers/Location"},
                            },
                        ),
                        **_errors(400, 401, 413, 422, 429, 502, 503),
                    },
                }
            },
            f"{api}/images": {
                "get": {
                    "tags": image_tag,
                    "operationId": "list_images",
                    "security": _BEARER,
                    "summary": "The caller's images, newest first",
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 100,
                                "default": 20,
                            },
                        },
                        {
                            "name": "cursor",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        *_LIST_FILTERS,
                    ],
                    "responses": {
                        "200": _json(_ref("Page"), "A page"),
                        **_errors(400, 401, 422, 503),
                    },
                }
            },
            f"{api}/images/{{image_id}}": {
                "get": {
                    "tags": image_tag,
                    "operationId": "get_image",
                    "security": _OPTIONAL_BEARER,
                    "summary": "Image metadata",
                    "parameters": [_IMAGE_ID],
                    "responses": {
                        "200": _json(
                            _ref("Image"),
                            "The image",
                            {"X-Cache": {"$ref": "#/components/headers/X-Cache"}},
                        ),
                        **_errors(401, 404, 503),
                    },
                },
                "delete": {
                    "tags": image_tag,
                    "operationId": "delete_image",
                    "security": _OPTIONAL_BEARER,
                    "summary": "Delete, as the owner or with the anonymous upload's delete token",
                    "parameters": [
                        _IMAGE_ID,
                        {
                            "name": "X-Delete-Token",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "delete_token",
                            "in": "query",
                            "required": False,
                            "deprecated": True,
                            "description": "Prefer the X-Delete-Token header (never logged)",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {"204": {"description": "Deleted"}, **_errors(401, 403, 404, 503)},
                },
            },
            f"{api}/images/{{image_id}}/file": {
                key: {**op, "tags": image_tag}
                for key, op in _binary_ops("file", IMAGE_TYPES, "The image's bytes").items()
            },
            f"{api}/images/{{image_id}}/thumbnail": {
                key: {**op, "tags": image_tag}
                for key, op in _binary_ops(
                    "thumbnail", THUMBNAIL_TYPES, "The thumbnail (made on demand)"
                ).items()
            },
            # social sign-in (OAuth through Supabase, PKCE)
            f"{api}/auth/oauth/{{provider}}": {
                "get": {
                    "tags": auth_tag,
                    "operationId": "oauthStart",
                    "summary": "Start social sign-in: 302 to the provider through Supabase",
                    "description": "`redirect_to` must be in CHITRAM_OAUTH_REDIRECTS. The user "
                    "comes back to `redirect_to?state=...&code=...`; check `state`, then post "
                    "`code` and the `code_verifier` to /api/v1/auth/oauth/token. Send your own "
                    "S256 `code_challenge` to keep the verifier yourself; otherwise the body "
                    "carries one. 404 when the provider is not configured.",
                    "parameters": [
                        {
                            "name": "provider",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                            "description": "A configured provider: github, google, ...",
                        },
                        {
                            "name": "redirect_to",
                            "in": "query",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "code_challenge",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "code_challenge_method",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "302": {
                            "description": "To the provider (Location); the body is for clients "
                            "that read it",
                            "headers": {
                                "Location": {"schema": {"type": "string"}},
                            },
                            "content": {JSON: {"schema": _ref("OAuthStart")}},
                        },
                        **_errors(400, 404, 422, 503),
                    },
                }
            },
            f"{api}/auth/oauth/token": {
                "post": {
                    "tags": auth_tag,
                    "operationId": "oauthToken",
                    "summary": "Finish social sign-in: exchange the code and verifier (PKCE)",
                    "requestBody": {
                        "required": True,
                        "content": {
                            JSON: {
                                "schema": {
                                    "type": "object",
                                    "required": ["code", "code_verifier"],
                                    "properties": {
                                        "code": {"type": "string"},
                                        "code_verifier": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _json(_ref("AuthResponse"), "Signed in"),
                        **_errors(400, 401, 404, 413, 422, 503),
                    },
                }
            },
            # variants
            f"{api}/images/{{image_id}}/variants/{{spec}}": _variant_ops(image_tag),
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3.1")},
                }
            },
        },
        "components": {
            "schemas": _schemas(),
            "headers": _headers(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }
    # tags
    spec["paths"].update(_tag_paths(api))
    spec["components"]["schemas"].update(_tag_schemas())
    # quotas and API tokens
    spec["paths"].update(_token_paths(api))
    spec["components"]["schemas"].update(_token_schemas())
    me = spec["paths"][f"{api}/auth/me"]["get"]
    me["responses"]["200"] = _json(_ref("Me"), "The user and what their images use")
    return spec


# quotas and API tokens ---------------------------------------------------------------------


def _token_schemas() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time"}
    limit = {"type": ["integer", "null"], "minimum": 0}
    token_fields = {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "scopes": {"type": "array", "items": {"enum": list(SCOPES)}},
        "created_at": timestamp,
        "expires_at": {"type": ["string", "null"], "format": "date-time"},
    }
    return {
        "Usage": {
            "type": "object",
            "required": ["bytes", "images", "quota_bytes", "quota_images"],
            "properties": {
                "bytes": {"type": "integer", "minimum": 0},
                "images": {"type": "integer", "minimum": 0},
                "quota_bytes": limit,
                "quota_images": limit,
            },
        },
        "Me": {
            "allOf": [
                _ref("User"),
                {"type": "object", "required": ["usage"], "properties": {"usage": _ref("Usage")}},
            ]
        },
        "ApiToken": {"type": "object", "required": list(token_fields), "properties": token_fields},
        "CreatedToken": {
            "type": "object",
            "required": [*token_fields, "token"],
            "properties": {**token_fields, "token": {"type": "string"}},
        },
    }


def _token_paths(api: str) -> dict[str, Any]:
    tags = ["auth"]
    body = {
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["name", "scopes"],
                    "properties": {
                        "name": {"type": "string", "minLength": 1, "maxLength": 100},
                        "scopes": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"enum": list(SCOPES)},
                        },
                        "expires_in_days": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "maximum": 3650,
                        },
                    },
                }
            }
        },
    }
    return {
        f"{api}/auth/tokens": {
            "post": {
                "tags": tags,
                "operationId": "create_api_token",
                "security": _BEARER,
                "summary": "Make a personal API token (its secret is shown this once)",
                "requestBody": body,
                "responses": {
                    "201": _json(_ref("CreatedToken"), "The token, with its secret"),
                    **_errors(401, 403, 413, 422, 503),
                },
            },
            "get": {
                "tags": tags,
                "operationId": "list_api_tokens",
                "security": _BEARER,
                "summary": "The caller's API tokens (no secrets)",
                "responses": {
                    "200": _json({"type": "array", "items": _ref("ApiToken")}, "Tokens"),
                    **_errors(401, 403, 503),
                },
            },
        },
        f"{api}/auth/tokens/{{token_id}}": {
            "delete": {
                "tags": tags,
                "operationId": "revoke_api_token",
                "security": _BEARER,
                "summary": "Revoke one of the caller's API tokens",
                "parameters": [
                    {
                        "name": "token_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {"204": {"description": "Revoked"}, **_errors(401, 403, 404, 503)},
            }
        },
    }


# tags ------------------------------------------------------------------------------------------

_LIST_FILTERS: list[dict[str, Any]] = [
    {
        "name": "tag",
        "in": "query",
        "required": False,
        "description": "Only images with every one of these tags (repeat the parameter)",
        "schema": {"type": "array", "items": {"type": "string"}, "maxItems": 10},
        "style": "form",
        "explode": True,
    },
    {
        "name": "q",
        "in": "query",
        "required": False,
        "description": "A filename substring or a tag-name prefix (case-insensitive)",
        "schema": {"type": "string", "maxLength": 200},
    },
]


def _limit_param(default: int) -> dict[str, Any]:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": default},
    }


def _tag_schemas() -> dict[str, Any]:
    nullable_str = {"type": ["string", "null"]}
    return {
        "Tag": {
            "type": "object",
            "required": ["id", "name", "category", "created_at"],
            "properties": {
                "id": {"type": "string"},
                "name": {"type": "string"},
                "category": nullable_str,
                "created_at": {"type": "string", "format": "date-time"},
            },
        },
        "ImageTag": {
            "type": "object",
            "required": ["name", "category", "source", "confidence"],
            "properties": {
                "name": {"type": "string"},
                "category": nullable_str,
                "source": {"enum": ["user", "ai"]},
                "confidence": {"type": ["integer", "null"], "minimum": 0, "maximum": 100},
            },
        },
        "PopularTag": {
            "type": "object",
            "required": ["name", "category", "count"],
            "properties": {
                "name": {"type": "string"},
                "category": nullable_str,
                "count": {"type": "integer", "minimum": 1},
            },
        },
    }


def _tag_paths(api: str) -> dict[str, Any]:
    tags_tag = ["tags"]

    def listing(schema: str, description: str) -> dict[str, Any]:
        return _json({"type": "array", "items": _ref(schema)}, description)

    name_param = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
    add_body = {
        "required": True,
        "content": {
            JSON: {
                "schema": {
                    "type": "object",
                    "required": ["tag"],
                    "properties": {
                        "tag": {"type": "string", "minLength": 2, "maxLength": 50},
                        "category": {"type": ["string", "null"], "maxLength": 20},
                    },
                }
            }
        },
    }
    return {
        f"{api}/images/{{image_id}}/tags": {
            "get": {
                "tags": tags_tag,
                "operationId": "image_tags",
                "security": _OPTIONAL_BEARER,
                "summary": "The image's tags (an unknown image has none: 200 [])",
                "parameters": [_IMAGE_ID],
                "responses": {"200": listing("ImageTag", "Tags"), **_errors(401, 503)},
            },
            "post": {
                "tags": tags_tag,
                "operationId": "add_image_tag",
                "security": _BEARER,
                "summary": "Tag the caller's image",
                "parameters": [_IMAGE_ID],
                "requestBody": add_body,
                "responses": {
                    "201": _json(_ref("ImageTag"), "Added"),
                    **_errors(400, 401, 403, 404, 413, 422, 503),
                },
            },
        },
        f"{api}/images/{{image_id}}/tags/{{name}}": {
            "delete": {
                "tags": tags_tag,
                "operationId": "remove_image_tag",
                "security": _BEARER,
                "summary": "Remove a tag from the caller's image (name in any case)",
                "parameters": [_IMAGE_ID, name_param],
                "responses": {
                    "204": {"description": "Removed"},
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        f"{api}/images/{{image_id}}/ai-tag": {
            "post": {
                "tags": tags_tag,
                "operationId": "ai_tag_image",
                "security": _BEARER,
                "summary": "Run the configured taggers on the caller's image now",
                "parameters": [_IMAGE_ID],
                "responses": {
                    "200": listing("ImageTag", "The AI tags now on the image"),
                    **_errors(400, 401, 403, 404, 429, 503),
                },
            }
        },
        f"{api}/tags": {
            "get": {
                "tags": tags_tag,
                "operationId": "list_tags",
                "security": _OPTIONAL_BEARER,
                "summary": "Tags on the caller's images, alphabetical ([] when anonymous)",
                "parameters": [_limit_param(20)],
                "responses": {"200": listing("Tag", "Tags"), **_errors(401, 422, 503)},
            }
        },
        f"{api}/tags/popular": {
            "get": {
                "tags": tags_tag,
                "operationId": "popular_tags",
                "security": _OPTIONAL_BEARER,
                "summary": "Most used tags first, counted over the caller's images ([] anonymous)",
                "parameters": [_limit_param(20)],
                "responses": {
                    "200": listing("PopularTag", "Tags with counts"),
                    **_errors(401, 422, 503),
                },
            }
        },
        f"{api}/tags/search": {
            "get": {
                "tags": tags_tag,
                "operationId": "search_tags",
                "security": _OPTIONAL_BEARER,
                "summary": "The caller's tags whose name starts with q (case-insensitive)",
                "parameters": [
                    {
                        "name": "q",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 50},
                    },
                    _limit_param(10),
                ],
                "responses": {"200": listing("Tag", "Tags"), **_errors(401, 422, 503)},
            }
        },
    }


@cache
def spec_bytes() -> bytes:
    return json.dumps(build_spec(), separators=(",", ":")).encode()


class OpenAPIResource:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = spec_bytes()
