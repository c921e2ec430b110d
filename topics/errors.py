"""Errors of the topics domain."""


class InvalidContentData(ValueError):
    """content_data for an item is malformed; the message names the field."""


class StaleItem(RuntimeError):
    """Under its row lock, the item no longer is what the caller read (a newer render, a
    regenerate, a delete): the write is refused and its upload discarded."""
