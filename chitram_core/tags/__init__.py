"""Tags and search: names (``names``) and the service (``service.TagService``)."""
