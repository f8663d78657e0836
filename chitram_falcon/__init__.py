"""The reference HTTP app: the Chitram v1 API served by Falcon over ``chitram_core``."""

from chitram_falcon.app import ChitramApp, create_app

__all__ = ["ChitramApp", "create_app"]
