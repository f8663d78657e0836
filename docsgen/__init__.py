"""Pages of the documentation site generated from the code at build time.

Nothing here is written by hand per setting, route, error code or metric: each page is built
from the object that defines them (``Settings`` and its attribute docstrings, the OpenAPI
document ``/openapi.json`` serves, ``ERRORS_BY_CODE``, the Prometheus collectors,
``chitram_core.__all__`` and the plugin groups). :mod:`docsgen.hooks` hands the pages to
mkdocs; the tests in ``tests/docs`` check the same functions.
"""
