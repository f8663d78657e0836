"""The reference HTTP app: the Chitram v1 API served by Falcon over ``chitram_core``."""

from chitram_falcon.app import create_app
from chitram_falcon.asgi import ChitramApp

__all__ = ["ChitramApp", "create_app"]
