"""Errors of the topics domain."""


class InvalidContentData(ValueError):
    """content_data for an item is malformed; the message names the field."""
