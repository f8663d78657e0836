"""The HTML pages: sign in, register, sign out, password reset, gallery, upload, image."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, unquote, urlencode

import falcon.asgi

from chitram_core import Image
from chitram_core.auth import rules
from chitram_core.errors import (
    ChitramError,
    Forbidden,
    InvalidRequest,
    ValidationError,
    is_internal,
)
from chitram_falcon.context import auth_rate_limit, log_in, read_fields
from chitram_falcon.resources.auth import RESET_MESSAGE
from chitram_falcon.security import public_base
from chitram_falcon.web.social import social_buttons
from chitram_falcon.web.templates import Markup, escape, human_size, join, render
from chitram_falcon.web.ui import Visit, WebUI, html_errors

NO_MARKUP = Markup("")
TIMES = "\u00d7"
"""The multiplication sign between width and height."""

NOTICES = {
    "signed-out": "You are signed out.",
    "deleted": "The image was deleted.",
}


def _notice(req: falcon.asgi.Request) -> Markup:
    text = NOTICES.get(req.get_param("notice") or "")
    return render("notice.html", text=text) if text else Markup("")


def _form_error(message: str | None) -> Markup:
    return render("form_error.html", message=message) if message else Markup("")


def _text(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    return value if isinstance(value, str) else ""


def _when(image: Image) -> str:
    return image.created_at.strftime("%Y-%m-%d %H:%M UTC")


class _Page:
    def __init__(self, ui: WebUI) -> None:
        self.ui = ui

    async def _posted(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response
    ) -> tuple[Visit, dict[str, Any]]:
        """A form post from one of our pages: origin checked, session read, token checked."""
        self.ui.check_origin(req)
        visit = await self.ui.visit(req, resp)
        fields = await read_fields(req)
        self.ui.check_token(visit, _text(fields, "csrf_token"))
        return visit, fields

    async def _limit(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, action: str, email: str
    ) -> None:
        await auth_rate_limit(req, resp, self.ui.chitram, action, email)


class SignInPage(_Page):
    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        target = self.ui.safe_next(visit, req.get_param("next"))
        if visit.principal is not None:
            self.ui.redirect(resp, target)
            return
        self._form(resp, visit, target, email="", error=None, notice=_notice(req))

    @html_errors
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit, fields = await self._posted(req, resp)
        email, password = _text(fields, "email"), _text(fields, "password")
        target = self.ui.safe_next(visit, _text(fields, "next"))
        try:
            session = await log_in(req, resp, self.ui.chitram, email, password)
        except ChitramError as exc:
            if is_internal(exc):
                raise
            self._form(resp, visit, target, email=email, error=exc.message, status=exc.status)
            return
        self.ui.sign_in(resp, visit, session)
        self.ui.redirect(resp, target)

    def _form(
        self,
        resp: falcon.asgi.Response,
        visit: Visit,
        target: str,
        *,
        email: str,
        error: str | None,
        notice: Markup = NO_MARKUP,
        status: int = 200,
    ) -> None:
        body = render(
            "signin.html",
            action=visit.url("/signin"),
            csrf=visit.csrf,
            next=target,
            email=email,
            error=_form_error(error),
            notice=notice,
            register=visit.url("/register"),
            reset=visit.url("/password-reset"),
            social=social_buttons(self.ui, visit, target),
        )
        self.ui.page(resp, visit, title="Sign in", body=body, status=status, section="signin")


class RegisterPage(_Page):
    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        if visit.principal is not None:
            self.ui.redirect(resp, visit.url("/"))
            return
        self._form(resp, visit, email="", error=None)

    @html_errors
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit, fields = await self._posted(req, resp)
        email, password = _text(fields, "email"), _text(fields, "password")
        try:
            await self._limit(req, resp, "register", email)
            session = await self.ui.chitram.auth.register(email, password)
        except ChitramError as exc:
            if is_internal(exc):
                raise
            self._form(resp, visit, email=email, error=exc.message, status=exc.status)
            return
        self.ui.sign_in(resp, visit, session)
        self.ui.redirect(resp, visit.url("/"))

    def _form(
        self,
        resp: falcon.asgi.Response,
        visit: Visit,
        *,
        email: str,
        error: str | None,
        status: int = 200,
    ) -> None:
        body = render(
            "register.html",
            action=visit.url("/register"),
            csrf=visit.csrf,
            email=email,
            error=_form_error(error),
            signin=visit.url("/signin"),
        )
        self.ui.page(resp, visit, title="Register", body=body, status=status, section="register")


class SignOutPage(_Page):
    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, visit.url("/signin"))
            return
        body = render(
            "signout.html",
            action=visit.url("/signout"),
            csrf=visit.csrf,
            email=visit.principal.email,
            home=visit.url("/"),
        )
        self.ui.page(resp, visit, title="Sign out", body=body)

    @html_errors
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit, _ = await self._posted(req, resp)
        await self.ui.sign_out(resp, visit)
        self.ui.redirect(resp, visit.url("/signin") + "?notice=signed-out")


class PasswordResetPage(_Page):
    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        self._form(resp, visit, email="", error=None, done=None)

    @html_errors
    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit, fields = await self._posted(req, resp)
        email = _text(fields, "email")
        try:
            rules.clean_email(email)
            await self._limit(req, resp, "reset", email)
            await self.ui.chitram.auth.request_password_reset(email)
        except ChitramError as exc:
            if is_internal(exc):
                raise
            self._form(resp, visit, email=email, error=exc.message, done=None, status=exc.status)
            return
        self._form(resp, visit, email=email, error=None, done=RESET_MESSAGE)

    def _form(
        self,
        resp: falcon.asgi.Response,
        visit: Visit,
        *,
        email: str,
        error: str | None,
        done: str | None,
        status: int = 200,
    ) -> None:
        body = render(
            "reset.html",
            action=visit.url("/password-reset"),
            csrf=visit.csrf,
            email=email,
            error=_form_error(error),
            done=render("notice.html", text=done) if done else Markup(""),
            signin=visit.url("/signin"),
        )
        self.ui.page(resp, visit, title="Reset your password", body=body, status=status)


def srcset(root: str, image: Image, presets: Sequence[str]) -> str:
    """``srcset`` from the width-only presets (``w<N>``): each preset at the width it really
    has (variants are never upscaled, so one at or past the image's width is the last)."""
    widths: dict[int, str] = {}
    for preset in presets:
        if not re.fullmatch(r"w[1-9][0-9]*", preset):
            continue
        real = min(int(preset[1:]), image.width)
        if real not in widths or int(preset[1:]) < int(widths[real][1:]):
            widths[real] = preset
    return ", ".join(
        f"{root}{image.variant_path(spec)} {width}w" for width, spec in sorted(widths.items())
    )


CARD_SIZES = "(max-width: 40rem) 50vw, 20rem"
VIEWER_SIZES = "(max-width: 48rem) 100vw, calc(100vw - 26rem)"
VIEWER_WIDTH = 1280
"""The ``src`` of the image page: the largest width preset up to this, not the original."""


def viewer_src(root: str, image: Image, presets: Sequence[str]) -> str:
    """The image page's fallback ``src``: a sized variant (the widest width preset of at most
    :data:`VIEWER_WIDTH` pixels), or the original when no width preset is configured."""
    widths = sorted(
        int(p[1:])
        for p in presets
        if re.fullmatch(r"w[1-9][0-9]*", p) and int(p[1:]) <= VIEWER_WIDTH
    )
    if not widths:
        return root + image.url
    return root + image.variant_path(f"w{widths[-1]}")


def card(visit: Visit, image: Image, presets: Sequence[str] = ()) -> Markup:
    return render(
        "card.html",
        id=image.id,
        href=visit.url(f"/images/{image.id}"),
        thumb=visit.root + image.thumbnail_url,
        srcset=srcset(visit.root, image, presets),
        sizes=CARD_SIZES,
        placeholder=image.dominant_color or "",
        filename=image.filename,
        meta=f"{image.width} {TIMES} {image.height} · {human_size(image.file_size)}",
        when=_when(image),
        iso=image.created_at.isoformat(),
    )


class GalleryPage(_Page):
    """The signed-in user's images, newest first; more pages come by the API's cursor (a link
    without JavaScript, fetched and appended as the visitor scrolls with it)."""

    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        if visit.principal is None:
            # back to the same filter after signing in (a visitor's tag chip leads here)
            tags_, q_ = gallery_filters(req)
            pairs = [("tag", t) for t in tags_] + ([("q", q_)] if q_ else [])
            query = urlencode(pairs, quote_via=quote)
            back = visit.url("/") + (f"?{query}" if query else "")
            self.ui.redirect(resp, self.ui.signin_url(visit, back))
            return
        cursor = req.get_param("cursor") or None
        tags, q = gallery_filters(req)
        page = await self.ui.chitram.images.list(
            visit.principal, limit=self.ui.page_size, cursor=cursor, tags=tags, query=q
        )
        filter_query = "".join(f"&tag={quote(t, safe='')}" for t in tags)
        filter_query += f"&q={quote(q, safe='')}" if q else ""
        more = Markup("")
        if page.next_cursor is not None:
            more = render(
                "more.html",
                href=visit.url("/") + "?cursor=" + quote(page.next_cursor, safe="") + filter_query,
                cursor=page.next_cursor,
            )
        empty = Markup("")
        if not page.items and cursor is None:
            empty = (
                render("no_matches.html")
                if tags or q
                else render("empty.html", upload=visit.url("/upload"))
            )
        body = render(
            "gallery.html",
            notice=_notice(req),
            cards=join(
                card(visit, image, self.ui.handle.settings.variant_presets) for image in page.items
            ),
            presets=",".join(self.ui.handle.settings.variant_presets),
            more=more,
            empty=empty,
            api=visit.url("/ui/api/images"),
            page_size=str(self.ui.page_size),
            upload=visit.url("/upload"),
            newest=render("newest.html", href=visit.url("/")) if cursor else Markup(""),
            filter=filter_form(visit, tags, q),
            filter_query=filter_query,
        )
        self.ui.page(resp, visit, title="My images", body=body, section="gallery")


class UploadPage(_Page):
    @html_errors
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        visit = await self.ui.visit(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url("/upload")))
            return
        settings = self.ui.handle.settings
        body = render(
            "upload.html",
            endpoint=visit.url("/ui/api/images/upload"),
            link_endpoint=visit.url("/ui/api/images/upload-url"),
            max_bytes=str(settings.max_upload_bytes),
            max_size=human_size(settings.max_upload_bytes),
            resumable_endpoint=visit.url("/ui/api/uploads"),
            max_resumable_bytes=str(settings.max_resumable_bytes),
            max_resumable_size=human_size(settings.max_resumable_bytes),
            tus_js=visit.url(self.ui.static.url("tus.min.js")),
            image_base=visit.url("/images/"),
            gallery=visit.url("/"),
        )
        self.ui.page(resp, visit, title="Upload images", body=body, section="upload")


class ImagePage(_Page):
    """Public: anyone with the link sees the image; only its owner gets the delete button."""

    @html_errors
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        visit = await self.ui.visit(req, resp)
        image = await self.ui.chitram.images.get(image_id)
        await self.show(req, resp, visit, image)

    async def show(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        visit: Visit,
        image: Image,
        *,
        tag_error: str | None = None,
        tag_value: str = "",
        status: int = 200,
    ) -> None:
        owner = visit.principal is not None and visit.principal.user_id == image.owner_id
        base = public_base(req, self.ui.chitram.settings)
        page_link = base + visit.url(f"/images/{image.id}")
        direct_link = base + visit.root + image.url
        delete = Markup("")
        if owner:
            delete = render(
                "delete_controls.html",
                confirm=visit.url(f"/images/{image.id}/delete"),
                action=visit.url(f"/images/{image.id}/delete"),
                csrf=visit.csrf,
                filename=image.filename,
            )
        presets = self.ui.handle.settings.variant_presets
        body = render(
            "image.html",
            original=visit.root + image.url,
            src=viewer_src(visit.root, image, presets),
            srcset=srcset(visit.root, image, presets),
            sizes=VIEWER_SIZES,
            filename=image.filename,
            width=str(image.width),
            height=str(image.height),
            size=human_size(image.file_size),
            bytes=f"{image.file_size:,}",
            content_type=image.content_type,
            when=_when(image),
            iso=image.created_at.isoformat(),
            page_link=page_link,
            direct_link=direct_link,
            delete=delete,
            back=render("back.html", href=visit.url("/")) if owner else Markup(""),
            tags=await tags_section(self.ui, visit, image, owner, tag_error, tag_value),
        )
        self.ui.page(resp, visit, title=image.filename, body=body, status=status)


class DeletePage(_Page):
    """GET asks for confirmation (the page without JavaScript); POST deletes."""

    @html_errors
    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        visit = await self.ui.visit(req, resp)
        if visit.principal is None:
            self.ui.redirect(
                resp, self.ui.signin_url(visit, visit.url(f"/images/{image_id}/delete"))
            )
            return
        image = await self.ui.chitram.images.get(image_id)
        if image.owner_id != visit.principal.user_id:
            raise Forbidden("Only the owner of an image can delete it")
        body = render(
            "delete.html",
            action=visit.url(f"/images/{image.id}/delete"),
            csrf=visit.csrf,
            filename=image.filename,
            thumb=visit.root + image.thumbnail_url,
            cancel=visit.url(f"/images/{image.id}"),
        )
        self.ui.page(resp, visit, title=f"Delete {image.filename}?", body=body)

    @html_errors
    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        visit, _ = await self._posted(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url(f"/images/{image_id}")))
            return
        await self.ui.chitram.images.delete(image_id, principal=visit.principal)
        self.ui.redirect(resp, visit.url("/") + "?notice=deleted")


# tags ------------------------------------------------------------------------------------------


def gallery_filters(req: falcon.asgi.Request) -> tuple[list[str], str]:
    """``?tag=`` (repeatable, blanks ignored) and ``?q=`` from the gallery's search form."""
    tags = [t.strip() for t in req.get_param_as_list("tag") or [] if t.strip()]
    return list(dict.fromkeys(tags)), (req.get_param("q") or "").strip()


def filter_form(visit: Visit, tags: list[str], q: str) -> Markup:
    hidden = join(Markup(f'<input type="hidden" name="tag" value="{escape(t)}">') for t in tags)
    active = Markup("")
    if tags or q:
        parts = []
        if tags:
            parts.append("tagged " + " and ".join(f"“{t.lower()}”" for t in tags))
        if q:
            parts.append(f"matching “{q}”")
        active = render("filter_active.html", what=" ".join(parts), clear=visit.url("/"))
    return render("gallery_filter.html", action=visit.url("/"), q=q, hidden=hidden, active=active)


async def tags_section(
    ui: WebUI, visit: Visit, image: Image, owner: bool, error: str | None, value: str
) -> Markup:
    found = await ui.chitram.tags.for_image(image.id)
    chips = []
    for tag in found:
        badge = Markup("")
        if tag.source == "ai":
            badge = render("tag_ai_badge.html", confidence=str(tag.confidence or 0))
        remove = Markup("")
        if owner:
            remove = render(
                "tag_remove.html",
                action=visit.url(f"/images/{image.id}/tags/{quote(tag.name, safe='')}/delete"),
                csrf=visit.csrf,
                tag=tag.name,
            )
        href = visit.url("/") + "?tag=" + quote(tag.name, safe="")
        chips.append(
            render(
                "tag_chip.html",
                kind="tag-ai" if tag.source == "ai" else "tag-user",
                tag=tag.name,
                source=tag.source,
                href=href,
                badge=badge,
                remove=remove,
            )
        )
    form = Markup("")
    if owner:
        form = render(
            "tag_form.html",
            action=visit.url(f"/images/{image.id}/tags"),
            csrf=visit.csrf,
            value=value,
            error=_form_error(error),
        )
    if not found and not owner:
        return Markup("")
    return render(
        "tags.html",
        chips=join(chips),
        empty=render("no_tags.html") if not found else Markup(""),
        form=form,
    )


class TagAddPage(_Page):
    """POST a tag from the image page's form; back to the page, or the page with the error."""

    @html_errors
    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str
    ) -> None:
        visit, fields = await self._posted(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url(f"/images/{image_id}")))
            return
        value = _text(fields, "tag")
        try:
            await self.ui.chitram.tags.add(image_id, value, principal=visit.principal)
        except (ValidationError, InvalidRequest) as exc:
            image = await self.ui.chitram.images.get(image_id)
            await ImagePage(self.ui).show(
                req, resp, visit, image, tag_error=exc.message, tag_value=value, status=exc.status
            )
            return
        self.ui.redirect(resp, visit.url(f"/images/{image_id}") + "#tags-title")


class TagRemovePage(_Page):
    """POST from a tag's remove button (the owner)."""

    @html_errors
    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, image_id: str, name: str
    ) -> None:
        visit, _ = await self._posted(req, resp)
        if visit.principal is None:
            self.ui.redirect(resp, self.ui.signin_url(visit, visit.url(f"/images/{image_id}")))
            return
        await self.ui.chitram.tags.remove(image_id, unquote(name), principal=visit.principal)
        self.ui.redirect(resp, visit.url(f"/images/{image_id}") + "#tags-title")
