"""One clock for every lease: the database's. A host whose clock runs ahead or behind never
decides that another host's lease has ended."""

import time
from datetime import UTC, datetime, timedelta

from django.db import connection
from django.db.models import DateTimeField, ExpressionWrapper, Value
from django.db.models.functions import Now


def db_now() -> datetime:
    """The database's clock. SQLite is a file on this host: its clock is the operating
    system's (read directly, never through a patched or offset process clock)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT clock_timestamp()")
            return cursor.fetchone()[0]
    return datetime.fromtimestamp(time.time(), UTC)


class DbNow(Now):
    """The database's clock read inside a statement (an UPDATE's value, a claim's filter or
    a locked row's annotation), so a write needs no `SELECT clock_timestamp()` of its own.
    PostgreSQL: the wall clock at that moment (not the transaction's or statement's start)."""

    def as_postgresql(self, compiler, connection, **extra_context):
        return self.as_sql(compiler, connection, template="CLOCK_TIMESTAMP()", **extra_context)


def db_now_plus(seconds: float) -> ExpressionWrapper:
    """The database's clock `seconds` from now, as an expression (a lease's end)."""
    return ExpressionWrapper(
        DbNow() + Value(timedelta(seconds=seconds)), output_field=DateTimeField()
    )
