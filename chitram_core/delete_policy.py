"""Who may delete an image (v1 order), and how an anonymous upload's delete token is kept.

The owner may; an anonymous image needs its delete token, stored only as a SHA-256 hash and
compared in constant time; anyone else is refused. The caller has already found the image
(unknown id: 404 first).
"""

from __future__ import annotations

import hashlib
import hmac

from chitram_core.errors import DeleteTokenRequired, Forbidden, InvalidDeleteToken
from chitram_core.models import Principal


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authorize_delete(
    owner_id: str | None,
    delete_token_hash: str | None,
    principal: Principal | None,
    delete_token: str | None,
) -> None:
    """Return when the delete may go ahead; raise the v1 error otherwise."""
    if principal is not None and owner_id is not None and principal.user_id == owner_id:
        return
    if owner_id is None:
        if delete_token is None:
            raise DeleteTokenRequired()
        if delete_token_hash is None or not hmac.compare_digest(
            delete_token_hash, hash_token(delete_token)
        ):
            raise InvalidDeleteToken()
        return
    raise Forbidden("Only the owner can delete this image")
