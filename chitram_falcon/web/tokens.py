"""The API tokens page: list, create (the secret shown once, with a ShareX uploader file for a
write-scoped token) and revoke personal API tokens."""

from __future__ import annotations

import base64
import json
from typing import Any

import falcon.asgi

from chitram_core.auth.api_tokens import SCOPES
from chitram_core.errors import ChitramError, ValidationError, is_internal
from chitram_core.models import CreatedToken
from chitram_falcon.security import public_base
from chitram_falcon.web.pages import _Page, _text
from chitram_falcon.web.templates import Markup, join, render
from chitram_falcon.web.ui import Visit, html_errors


def sharex_uploader(base: str, api_root: str, token: str, name: str) -> dict[str, Any]:
    """A ShareX custom uploader (``.sxcu``) that uploads with ``token`` and links the file."""
    return {
        "Version": "15.0.0",
        "Name": f"Chitram ({name})",
        "DestinationType": "ImageUploader",
        "RequestMethod": "POST",
        "RequestURL": f"{base}{api_root}/api/v1/images/upload",
        "Headers": {"Authorization": f"Bearer {token}"},
        "Body": "MultipartFormData",
        "FileFormName": "file",
        "URL": f"{base}{api_root}{{json:url}}",
        "ThumbnailURL": f"{base}{api_root}{{json:thumbnail_url}}",
        "ErrorMessage": "{json:detail.message}",
    }


class TokensPage(_Page):
    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url("/tokens")))
            return
        await self._show(req, resp, visit)

    @html_errors
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit, fields = await self._posted(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url("/tokens")))
            return
        try:
            created = await self.ui.chitram.tokens.create(
                visit.principal,
                _text(fields, "name"),
                [s for s in SCOPES if fields.get("scope_" + s.replace(":", "_")) == "on"],
                _days(_text(fields, "expires_in_days")),
            )
        except ChitramError as exc:
            if is_internal(exc):
                raise
            await self._show(req, resp, visit, error=exc.message, status=exc.status)
            return
        await self._show(req, resp, visit, created=created)

    async def _show(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        visit: Visit,
        *,
        created: CreatedToken | None = None,
        error: str | None = None,
        status: int = 200,
    ) -> None:
        assert visit.principal is not None
        tokens = await self.ui.chitram.tokens.list(visit.principal)
        rows = join(
            render(
                "token_row.html",
                {"name": t.name},
                scopes=", ".join(t.scopes),
                created=t.created_at.strftime("%Y-%m-%d"),
                expires=t.expires_at.strftime("%Y-%m-%d") if t.expires_at else "never",
                revoke=visit.url(f"/tokens/{t.id}/revoke"),
                csrf=visit.csrf,
            )
            for t in tokens
        )
        body = render(
            "tokens.html",
            action=visit.url("/tokens"),
            csrf=visit.csrf,
            created=self._created(req, visit, created) if created else Markup(""),
            error=render("form_error.html", message=error) if error else Markup(""),
            rows=render("token_table.html", rows=rows) if tokens else Markup("<p>None yet.</p>"),
        )
        self.ui.page(resp, visit, title="API tokens", body=body, status=status, section="tokens")

    def _created(self, req: falcon.asgi.Request, visit: Visit, created: CreatedToken) -> Markup:
        sharex = Markup("")
        if "images:write" in created.scopes:
            # ShareX calls from outside the browser: it needs an absolute URL. Without
            # CHITRAM_PUBLIC_URL, the address this browser used: the file is made for the
            # signed-in requester alone, on a no-store page, so a forged Host misleads only
            # the client that forged it (shared links stay relative).
            base = public_base(req, self.ui.chitram.settings) or f"{req.scheme}://{req.netloc}"
            config = sharex_uploader(base, visit.root, created.token, created.name)
            encoded = base64.b64encode(json.dumps(config, indent=2).encode()).decode()
            sharex = render(
                "token_sharex.html",
                filename="chitram.sxcu",
                href=f"data:application/json;base64,{encoded}",
            )
        return render(
            "token_created.html", {"name": created.name}, token=created.token, sharex=sharex
        )


class TokenRevokePage(_Page):
    @html_errors
    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, token_id: str
    ) -> None:
        visit, _ = await self._posted(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url("/tokens")))
            return
        await self.ui.chitram.tokens.revoke(visit.principal, token_id)
        self.ui.redirect(resp, visit.url("/tokens"))


def _days(raw: str) -> int | None:
    raw = raw.strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValidationError("Expires after must be a whole number of days")
    return int(raw)
