"""The data migration that gives every stored video an explicit location: rows from before
locations were recorded are in the storage configured when it runs."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.conftest import BUCKET

BEFORE = [("topics", "0010_poster_and_captions")]
AFTER = [("topics", "0011_explicit_storage_location")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture(autouse=True)
def back_to_the_latest_migrations():
    yield
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())


def _rows(apps, local: str) -> dict:
    Topic = apps.get_model("topics", "Topic")
    ContentItem = apps.get_model("topics", "ContentItem")
    topic = Topic.objects.create(title="Cells")
    path = "avatar_videos/avatar_{}.mp4"

    def item(name: str, bucket: str, stored: bool = True) -> int:
        data = {"storagePath": path.format(name)} if stored else {"script": "x"}
        return ContentItem.objects.create(
            topic=topic, content_type="avatar_video", content_data=data,
            storage_path=path.format(name) if stored else "", storage_bucket=bucket,
        ).pk  # fmt: skip

    return {"legacy": item("legacy", ""), "other": item("other", "media-old"),
            "local": item("local", local), "none": item("none", "", stored=False)}  # fmt: skip


def _locations(apps) -> dict:
    ContentItem = apps.get_model("topics", "ContentItem")
    return {row.pk: (row.storage_bucket, row.content_data.get("storageBucket"))
            for row in ContentItem.objects.all()}  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_legacy_rows_get_the_configured_bucket():
    ids = _rows(migrate(BEFORE), "local")
    locations = _locations(migrate(AFTER))
    assert locations[ids["legacy"]] == (BUCKET, BUCKET)
    assert locations[ids["other"]] == ("media-old", None)  # named already: untouched
    assert locations[ids["local"]] == ("local", None)
    assert locations[ids["none"]] == ("", None)  # no stored object, no location


@pytest.mark.django_db(transaction=True)
def test_legacy_rows_of_a_local_site_are_local_files(local_storage):
    ids = _rows(migrate(BEFORE), "local")
    locations = _locations(migrate(AFTER))
    assert locations[ids["legacy"]] == ("local", "local")
    assert locations[ids["none"]] == ("", None)
