"""One migrated template database per test run on PostgreSQL; each xdist worker clones it.

Migrating costs each worker seconds of CPU (and PostgreSQL many small DDL commits); a clone
(`CREATE DATABASE ... TEMPLATE`) is a file copy. The run's controller names the template
(through the environment its workers inherit) and drops it at the end; the first worker to
take the lock migrates it, the others wait for it and clone it. The migrations still run
once per run, from scratch: nothing is kept between runs.
"""

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path

ENV = "CONTENTSTUDIO_TEST_TEMPLATE_DB"


def _settings() -> dict:
    from django.conf import settings

    return settings.DATABASES["default"]


def on_postgresql() -> bool:
    return _settings()["ENGINE"].endswith(("postgresql", "postgis"))


def template_name(on_redis: bool) -> str:
    """Unique to this run (the controller's pid) and its database; PostgreSQL keeps 63
    characters of a name, so the unique part comes first."""
    broker = "redis" if on_redis else "orm"
    return f"cs_tpl_{os.getpid()}_{broker}_{_settings()['NAME']}"[:63]


def _maintenance():
    """A connection to the server's `postgres` database, outside any transaction."""
    import psycopg

    db = _settings()
    return psycopg.connect(
        dbname="postgres", host=db.get("HOST") or None, port=db.get("PORT") or None,
        user=db.get("USER") or None, password=db.get("PASSWORD") or None, autocommit=True,
    )  # fmt: skip


def _exists(cursor, name: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
    return cursor.fetchone() is not None


@contextlib.contextmanager
def _lock(name: str):
    with (Path(tempfile.gettempdir()) / f"{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _migrate_template(template: str) -> None:
    """Django's own test-database creation (migrations, then what `post_migrate` adds),
    into the template; the connection's settings are put back afterwards."""
    from django.db import connection

    db = connection.settings_dict
    test, name = dict(db.get("TEST", {})), db["NAME"]
    db["TEST"] = {**test, "NAME": template}
    try:
        connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    finally:
        connection.close()
        db["TEST"], db["NAME"] = test, name


def clone_for_worker(template: str) -> None:
    """The worker's test database (its TEST NAME), a copy of the template: pytest-django then
    finds it there (keepdb) and its `migrate` has nothing left to do."""
    target = _settings()["TEST"]["NAME"]
    with _lock(template):
        with _maintenance() as admin:
            built = _exists(admin.cursor(), template)
        if not built:
            _migrate_template(template)
        with _maintenance() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{template}"')


def drop_abandoned() -> None:
    """Templates of runs that ended without dropping theirs (killed): their pid is gone."""
    with _maintenance() as admin:
        names = admin.execute(
            "SELECT datname FROM pg_database WHERE datname ~ '^cs_tpl_[0-9]+_'"
        ).fetchall()
    for (name,) in names:
        pid = int(name.split("_")[2])
        if not Path(f"/proc/{pid}").exists():
            drop(name)


def drop(name: str) -> None:
    with _maintenance() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    with contextlib.suppress(OSError):
        (Path(tempfile.gettempdir()) / f"{name}.lock").unlink()
