"""One clock for every lease: the database's. A host whose clock runs ahead or behind never
decides that another host's lease has ended."""

import time
from datetime import UTC, datetime

from django.db import connection


def db_now() -> datetime:
    """The database's clock. SQLite is a file on this host: its clock is the operating
    system's (read directly, never through a patched or offset process clock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return datetime.fromtimestamp(time.time(), UTC)
