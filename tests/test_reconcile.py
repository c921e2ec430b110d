"""reconcile_storage against the real S3 server: orphans, dangling rows, the ledger."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.builders import make_stored_item, make_topic, run_command
from tests.conftest import BUCKET
from tests.test_multipart import abort_all
from topics.models import ContentItem
from videostore.models import UploadLedgerEntry

pytestmark = pytest.mark.django_db(transaction=True)

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100


@pytest.fixture(autouse=True)
def _no_multipart_uploads(s3_server):
    """Unfinished uploads other tests left would count as problems here."""
    abort_all(s3_server)
    yield
    abort_all(s3_server)


def put(s3_server, key: str, body: bytes = VIDEO) -> None:
    s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=body)


def reconcile(*args: str) -> tuple[int, dict]:
    from io import StringIO

    out = StringIO()
    code = run_command("reconcile_storage", "--json", *args, stdout=out)
    return code, json.loads(out.getvalue())


def test_consistent_storage_exits_zero(s3_server):
    topic = make_topic()
    put(s3_server, "avatar_videos/avatar_a_1.mp4")
    make_stored_item(topic, "avatar_videos/avatar_a_1.mp4", len(VIDEO))
    code, report = reconcile()
    assert code == 0
    assert report["objects_listed"] == 1 and report["rows_checked"] == 1
    assert report["consistent"] is True


def test_orphan_is_reported_then_deleted_past_the_grace_period(s3_server, bucket_keys):
    put(s3_server, "avatar_videos/avatar_orphan.mp4")
    put(s3_server, "other_prefix/not_ours.mp4")  # outside the prefix: never touched
    code, report = reconcile("--grace-seconds", "0")
    assert code == 1 and report["orphans"] == 1
    assert "avatar_videos/avatar_orphan.mp4" in bucket_keys()

    code, report = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0 and report["deleted_orphans"] == 1
    assert bucket_keys() == ["other_prefix/not_ours.mp4"]
    assert not UploadLedgerEntry.objects.exists()


def test_young_orphan_is_left_alone_during_the_grace_period(s3_server, bucket_keys):
    put(s3_server, "avatar_videos/avatar_inflight.mp4")
    code, report = reconcile("--fix", "--grace-seconds", "3600")
    assert code == 0
    assert report["orphans_in_grace"] == 1 and report["deleted_orphans"] == 0
    assert bucket_keys() == ["avatar_videos/avatar_inflight.mp4"]


def test_dangling_rows_are_found_and_marked_for_regeneration(s3_server):
    topic = make_topic()
    missing = make_stored_item(topic, "avatar_videos/avatar_missing.mp4", 10)
    put(s3_server, "avatar_videos/avatar_short.mp4", VIDEO)
    wrong_size = make_stored_item(topic, "avatar_videos/avatar_short.mp4", len(VIDEO) + 5)

    code, report = reconcile()
    assert code == 1
    assert report["dangling_missing"] == 1 and report["dangling_size"] == 1

    code, report = reconcile("--fix")
    assert code == 0 and report["marked_for_regeneration"] == 2
    for item in (missing, wrong_size):
        item.refresh_from_db()
        assert item.status == ContentItem.Status.NEEDS_REGENERATION
        assert item.storage_path == ""
        assert "storagePath" not in item.content_data
    assert reconcile()[0] == 0


def test_crashed_upload_in_the_ledger_is_swept(s3_server, bucket_keys):
    """A worker killed between upload and commit leaves a ledger entry and an object."""
    UploadLedgerEntry.objects.create(storage_path="avatar_videos/avatar_crash.mp4")
    put(s3_server, "avatar_videos/avatar_crash.mp4")
    code, report = reconcile("--grace-seconds", "3600")
    assert code == 0 and report["pending_uploads"] == 1 and report["orphans_in_grace"] == 1

    code, report = reconcile("--fix", "--grace-seconds", "0")
    assert code == 0 and report["deleted_orphans"] == 1
    assert bucket_keys() == []
    assert not UploadLedgerEntry.objects.exists()


def test_listing_spans_many_pages(s3_server):
    topic = make_topic()
    client = s3_server.client()
    keys = [f"avatar_videos/avatar_{number:05d}.mp4" for number in range(1005)]
    with ThreadPoolExecutor(8) as pool:  # the S3 server answers several at once
        list(pool.map(lambda key: client.put_object(Bucket=BUCKET, Key=key, Body=VIDEO), keys))
    for key in keys[::2]:
        make_stored_item(topic, key, len(VIDEO))
    code, report = reconcile("--grace-seconds", "3600")
    assert report["objects_listed"] == 1005
    assert report["rows_checked"] == 503
    assert report["orphans_in_grace"] == 502
    assert code == 0


def test_every_run_is_recorded_and_only_the_last_ones_are_kept(s3_server, monkeypatch):
    from videostore import runs
    from videostore.models import ReconcileRun

    put(s3_server, "avatar_videos/avatar_orphan.mp4")
    assert reconcile("--grace-seconds", "0")[0] == 1
    run = runs.last_reconcile_run()
    assert (run.fix, run.consistent, run.problems, run.error) == (False, False, 1, "")
    assert run.report["orphans"] == 1
    assert run.started_at <= run.finished_at

    assert reconcile("--fix", "--grace-seconds", "0")[0] == 0
    run = runs.last_reconcile_run()
    assert (run.fix, run.consistent, run.problems) == (True, True, 0)
    assert run.report["deleted_orphans"] == 1

    monkeypatch.setattr(runs, "KEEP_RUNS", 3)
    for _ in range(4):
        reconcile()
    kept = list(ReconcileRun.objects.order_by("pk"))
    assert len(kept) == 3 and kept[-1] == runs.last_reconcile_run()


def test_a_run_that_cannot_reach_storage_exits_two_and_is_recorded(storage_link):
    from videostore.runs import last_reconcile_run

    storage_link.cut()
    assert run_command("reconcile_storage") == 2
    run = last_reconcile_run()
    assert run.consistent is False and run.error.startswith("Storage is unavailable")
    assert "127.0.0.1" not in run.error


def test_human_output_lists_sample_paths_and_suggests_fix(s3_server):
    from io import StringIO

    topic = make_topic()
    put(s3_server, "avatar_videos/avatar_orphan.mp4")
    make_stored_item(topic, "avatar_videos/avatar_missing.mp4", 10)

    out = StringIO()
    assert run_command("reconcile_storage", "--grace-seconds", "0", stdout=out) == 1
    text = out.getvalue()
    assert "avatar_videos/avatar_orphan.mp4" in text
    assert "avatar_videos/avatar_missing.mp4" in text and "missing" in text
    assert "2 problem(s) remain" in text
    assert "Run again with --fix" in text

    out = StringIO()
    assert run_command("reconcile_storage", "--fix", "--grace-seconds", "0", stdout=out) == 0
    assert "consistent" in out.getvalue() and "--fix to repair" not in out.getvalue()


def test_a_row_that_moved_on_since_the_listing_is_never_marked(s3_server, bucket_keys):
    """The listing and the rows are two moments: a regenerate that replaced the object in
    between must not be undone (the item keeps its new, stored video)."""
    from topics.reconcile import ReconcileReport, _handle_dangling
    from videostore.storage import VideoStorage

    topic = make_topic()
    item = make_stored_item(topic, "avatar_videos/avatar_new.mp4", len(VIDEO))
    put(s3_server, "avatar_videos/avatar_new.mp4", VIDEO)
    report = ReconcileReport()
    # What an older read of the rows saw: the item at its old, now deleted, object.
    _handle_dangling(report, item.pk, "avatar_videos/avatar_old.mp4", "missing", True,
                     video_storage=VideoStorage())  # fmt: skip
    # And an object that a slow listing missed but that is there now.
    _handle_dangling(report, item.pk, "avatar_videos/avatar_new.mp4", "missing", True,
                     video_storage=VideoStorage())  # fmt: skip
    assert report.dangling_missing == 0 and report.marked_for_regeneration == 0
    item.refresh_from_db()
    assert item.status == ContentItem.Status.READY
    assert item.storage_path == "avatar_videos/avatar_new.mp4"
    assert bucket_keys() == ["avatar_videos/avatar_new.mp4"]


def test_check_reports_an_abandoned_upload_exactly_as_fix_removes_it(s3_server, bucket_keys):
    """A worker whose lease ended never commits its upload: the check calls the object an
    orphan (young as it is) and exits 1; the fix deletes those same paths and exits 0."""
    from datetime import timedelta

    from django.utils import timezone

    abandoned, live = "avatar_videos/avatar_abandoned.mp4", "avatar_videos/avatar_live.mp4"
    UploadLedgerEntry.objects.create(
        storage_path=abandoned,
        owner="worker-1",
        lease_expires_at=timezone.now() - timedelta(seconds=5),
    )
    UploadLedgerEntry.objects.create(
        storage_path=live, owner="worker-2", lease_expires_at=timezone.now() + timedelta(minutes=5)
    )
    put(s3_server, abandoned)
    put(s3_server, live)

    code, check = reconcile()
    assert code == 1
    assert (check["orphans"], check["orphans_in_grace"], check["problems"]) == (1, 1, 1)
    assert (check["pending_uploads"], check["pending_deletes"]) == (1, 1)
    assert sorted(bucket_keys()) == [abandoned, live]  # a check changes nothing
    assert UploadLedgerEntry.objects.get(storage_path=abandoned).intent == "upload"

    code, fixed = reconcile("--fix")
    assert code == 0 and fixed["deleted_orphans"] == 1
    assert fixed["samples"]["orphans"] == check["samples"]["orphans"]
    assert [sample["storage_path"] for sample in check["samples"]["orphans"]] == [abandoned]
    assert bucket_keys() == [live]
    assert list(UploadLedgerEntry.objects.values_list("storage_path", "intent")) == [
        (live, "upload")
    ]
    assert reconcile()[0] == 0


def test_the_reconcile_schedule_follows_the_module_to_topics():
    """topics 0007 points the periodic task of avatars 0003 at topics.reconcile."""
    from importlib import import_module

    from django.apps import apps
    from django.utils.module_loading import import_string
    from django_q.models import Schedule

    migration = import_module("topics.migrations.0008_reconcile_moves_to_topics")
    Schedule.objects.update_or_create(
        name="avatars: reconcile storage",
        defaults={"func": "avatars.reconcile.scheduled_reconcile", "schedule_type": "H"},
    )
    migration.rename_schedule(apps, None)
    schedule = Schedule.objects.get(name="avatars: reconcile storage")
    assert schedule.func == "topics.reconcile.scheduled_reconcile"
    assert callable(import_string(schedule.func))


def test_only_the_ledger_module_writes_ledger_rows():
    """One owner per table's writes: outside videostore, ledger rows are only read."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    write = re.compile(r"UploadLedgerEntry\.objects[\s\S]{0,200}?\.(create|update|delete|"
                       r"update_or_create|get_or_create|bulk_create)\(")  # fmt: skip
    offenders = [
        str(path.relative_to(root))
        for package in ("studio", "avatars", "topics")
        for path in (root / package).rglob("*.py")
        if "migrations" not in path.parts and write.search(path.read_text())
    ]
    assert offenders == []
