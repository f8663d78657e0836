"""The app the browser tests run under uvicorn: ``chitram serve``'s app with a small gallery page.

``CHITRAM_*`` variables configure it as they do ``chitram serve``; ``CHITRAM_TEST_UI_PAGE_SIZE``
sets the gallery's page size so that a few images make several pages.
"""

from __future__ import annotations

import os

from chitram_core import Settings
from chitram_falcon.app import ChitramApp, create_app
from chitram_falcon.web import mount


def app_factory() -> ChitramApp:
    page_size = int(os.environ.get("CHITRAM_TEST_UI_PAGE_SIZE", "24"))
    settings = Settings.from_env()
    return create_app(
        settings=settings,
        web_ui=False,
        extensions=[lambda app: mount(app, page_size=page_size)],
    )
