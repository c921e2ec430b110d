"""Log lines name what happened in the message itself (the plain formatter prints no extras)."""

import logging

import pytest

from tests.builders import make_stored_item, make_topic
from tests.conftest import BUCKET
from tests.test_multipart import abort_all
from topics.reconcile import reconcile_storage

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_reconcile_line_names_its_counts_and_sample_paths(s3_server, caplog):
    abort_all(s3_server)
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_lf_orphan.mp4",
                                  Body=b"x")  # fmt: skip
    make_stored_item(make_topic(), "avatar_videos/avatar_lf_gone.mp4", 10)
    caplog.set_level(logging.INFO, logger="topics.reconcile")

    reconcile_storage(grace_seconds=0)

    (line,) = [r.getMessage() for r in caplog.records if "storage reconciled" in r.getMessage()]
    assert "2 problem(s) in 1 object(s) and 1 row(s)" in line
    assert (
        "avatar_videos/avatar_lf_orphan.mp4" in line and "avatar_videos/avatar_lf_gone.mp4" in line
    )
    assert "orphans 1" in line and "dangling 1 missing" in line
