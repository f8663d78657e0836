"""The "Continue with ..." buttons: what the sign-in page shows of social sign-in.

Its own module so that the sign-in page (:mod:`chitram_falcon.web.pages`) and the sign-in flow
(:mod:`chitram_falcon.web.oauth`, which reuses that page) both import it, not each other.
"""

from __future__ import annotations

from urllib.parse import quote

from chitram_falcon.web.templates import Markup, join, render
from chitram_falcon.web.ui import Visit, WebUI

LABELS = {"github": "GitHub", "google": "Google", "gitlab": "GitLab", "azure": "Microsoft"}
"""How a provider is named on its button (others: the name, capitalised)."""


def social_buttons(ui: WebUI, visit: Visit, target: str) -> Markup:
    """One "Continue with ..." link per configured provider (nothing when none is)."""
    providers = ui.chitram.auth.oauth_providers
    if not providers:
        return Markup("")
    buttons = join(
        render(
            "social_button.html",
            href=visit.url(f"/auth/oauth/{name}") + "?next=" + quote(target, safe="/"),
            label=LABELS.get(name, name.capitalize()),
            provider=name,
        )
        for name in providers
    )
    return render("social.html", buttons=buttons)
