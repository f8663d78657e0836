"""The one cattrs converter: every model to its JSON shape (CONTRACT §3) and back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import cattrs

from chitram_core.models import Image, Session, User

converter = cattrs.Converter()


def _unstructure_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _structure_datetime(value: Any, _type: type) -> datetime:
    if isinstance(value, datetime):
        return value
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


converter.register_unstructure_hook(datetime, _unstructure_datetime)
converter.register_structure_hook(datetime, _structure_datetime)


def _unstructure_user(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "is_active": user.is_active,
        "created_at": _unstructure_datetime(user.created_at),
    }


def _unstructure_image(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "filename": image.filename,
        "content_type": image.content_type,
        "file_size": image.file_size,
        "width": image.width,
        "height": image.height,
        "sha256": image.sha256,
        "created_at": _unstructure_datetime(image.created_at),
        "url": image.url,
        "thumbnail_ready": image.thumbnail_ready,
        "thumbnail_url": image.thumbnail_url,
        "delete_token": image.delete_token,
        "blurhash": image.blurhash,
        "dominant_color": image.dominant_color,
    }


def _unstructure_session(session: Session) -> dict[str, Any]:
    return {
        "user": _unstructure_user(session.user),
        "access_token": session.access_token,
        "token_type": session.token_type,
        "refresh_token": session.refresh_token,
        "expires_in": session.expires_in,
    }


converter.register_unstructure_hook(User, _unstructure_user)
converter.register_unstructure_hook(Image, _unstructure_image)
converter.register_unstructure_hook(Session, _unstructure_session)


def _structure_image(data: dict[str, Any], _type: type) -> Image:
    fields = {k: v for k, v in data.items() if k not in {"url", "thumbnail_url"}}
    fields["created_at"] = _structure_datetime(fields["created_at"], datetime)
    return Image(**fields)


converter.register_structure_hook(Image, _structure_image)


def to_json(value: Any) -> Any:
    """Unstructure any model (or container of models) into JSON-ready data."""
    return converter.unstructure(value)
