"""Real faults to inject: a database trigger that raises, storage behind a cuttable link."""

import contextlib

from django.db import connection

_SQLITE_TRIGGER = """
CREATE TRIGGER inject_item_failure_{op} BEFORE {op} ON topics_contentitem
WHEN NEW.storage_path != ''
BEGIN SELECT RAISE(ABORT, 'injected database failure'); END;
"""
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION inject_item_failure() RETURNS trigger AS $$
BEGIN RAISE EXCEPTION 'injected database failure'; END $$ LANGUAGE plpgsql;
"""
_PG_TRIGGER = """
CREATE TRIGGER inject_item_failure BEFORE INSERT OR UPDATE ON topics_contentitem
FOR EACH ROW WHEN (NEW.storage_path <> '') EXECUTE FUNCTION inject_item_failure();
"""


@contextlib.contextmanager
def failing_content_item_writes():
    """While active, writing a content item that references a stored object raises in the DB."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(_PG_FUNCTION)
            cursor.execute(_PG_TRIGGER)
        else:
            for op in ("INSERT", "UPDATE"):
                cursor.execute(_SQLITE_TRIGGER.format(op=op))
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("DROP TRIGGER IF EXISTS inject_item_failure ON topics_contentitem")
                cursor.execute("DROP FUNCTION IF EXISTS inject_item_failure()")
            else:
                for op in ("INSERT", "UPDATE"):
                    cursor.execute(f"DROP TRIGGER IF EXISTS inject_item_failure_{op}")
