"""/healthz names a missing engine or qcluster: heartbeats recorded by the engine's sweep and
by the job workers (at start and from django-q2's schedule), read on the database's clock."""

import re
from datetime import timedelta

import pytest
from django.db.models.functions import Now
from django_q.models import Schedule
from django_q.signals import post_spawn

from avatars.heartbeats import Kind, record_heartbeat
from avatars.jobs import run_engine
from avatars.models import ProcessHeartbeat

pytestmark = pytest.mark.django_db


def test_healthz_warns_when_no_engine_and_no_qcluster_were_ever_seen(client):
    response = client.get("/healthz")
    assert response.status_code == 200  # the web process serves: no 503 for a missing worker
    body = response.json()
    assert body["status"] == "ok" and body["warnings"] == ["engine", "workers"]
    assert body["processes"]["engine"] == {
        "ok": False, "seconds_since_last_seen": None, "error": "No engine sweep recorded yet."
    }  # fmt: skip
    assert body["processes"]["workers"]["error"].startswith("No qcluster")


def test_fresh_heartbeats_of_both_kinds_clear_the_warnings(client):
    record_heartbeat(Kind.ENGINE, name="host-a:10")
    record_heartbeat(Kind.WORKERS, name="host-b:20")
    body = client.get("/healthz").json()
    assert body["warnings"] == []
    assert all(process["ok"] for process in body["processes"].values())


def test_a_stale_engine_heartbeat_is_named_with_its_age(client, settings):
    settings.VIDEO_ENGINE_STALE_SECONDS = 60
    record_heartbeat(Kind.ENGINE, name="host-a:10")
    record_heartbeat(Kind.WORKERS, name="host-b:20")
    ProcessHeartbeat.objects.filter(kind=Kind.ENGINE).update(seen_at=Now() - timedelta(minutes=5))

    body = client.get("/healthz").json()
    assert body["warnings"] == ["engine"]
    engine = body["processes"]["engine"]
    assert re.fullmatch(r"No engine sweep for 30\d s\.", engine["error"]), engine
    assert 300 <= engine["seconds_since_last_seen"] < 310


def test_the_newest_of_several_engines_counts(client):
    record_heartbeat(Kind.ENGINE, name="host-a:10")
    ProcessHeartbeat.objects.filter(name="host-a:10").update(seen_at=Now() - timedelta(hours=1))
    record_heartbeat(Kind.ENGINE, name="host-b:11")
    assert "engine" not in client.get("/healthz").json()["warnings"]


def test_a_second_heartbeat_of_one_process_refreshes_its_row():
    record_heartbeat(Kind.WORKERS, name="host-b:20")
    ProcessHeartbeat.objects.update(seen_at=Now() - timedelta(minutes=10))
    record_heartbeat(Kind.WORKERS, name="host-b:20")
    row = ProcessHeartbeat.objects.get()
    assert (row.kind, row.name) == ("workers", "host-b:20")
    assert ProcessHeartbeat.objects.filter(seen_at__gte=Now() - timedelta(minutes=1)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_engine_records_a_heartbeat_when_it_sweeps(settings):
    settings.VIDEO_ENGINE_COPY_THREADS = 1  # each makes its storage clients at the start
    run_engine(tick_seconds=0.05, stop_after=0.2)
    assert list(ProcessHeartbeat.objects.values_list("kind", flat=True)) == ["engine"]


def test_a_spawned_qcluster_worker_records_the_workers_heartbeat():
    post_spawn.send(sender="django_q", proc_name="Process-1:1")
    assert list(ProcessHeartbeat.objects.values_list("kind", flat=True)) == ["workers"]


def test_the_workers_heartbeat_is_scheduled_every_minute():
    schedule = Schedule.objects.get(name="avatars: workers heartbeat")
    assert schedule.func == "avatars.heartbeats.record_workers_heartbeat"
    assert (schedule.schedule_type, schedule.minutes, schedule.repeats) == ("I", 1, -1)


def test_a_cluster_that_takes_no_wake_ups_is_named_even_with_fresh_heartbeats(client, settings):
    """A django-q2 cluster wedged by a killed worker still runs its heartbeat process but
    takes no tasks: copies whose wake-up went untaken for a lease, and jobs past their lease,
    are warned about."""
    from avatars.models import VideoJob
    from avatars.services import avatar_video_request
    from tests.builders import make_topic

    settings.VIDEO_JOB_LEASE_SECONDS = 60
    record_heartbeat(Kind.ENGINE, name="host-a:10")
    record_heartbeat(Kind.WORKERS, name="host-b:20")
    job = avatar_video_request(topic=make_topic(), script="Bark.", enqueue_submit=False)
    VideoJob.objects.filter(pk=job.pk).update(
        state="downloading", wakeup_sent_at=Now() - timedelta(minutes=3)
    )
    body = client.get("/healthz").json()
    assert body["warnings"] == ["jobs"]
    assert body["processes"]["jobs"]["error"].startswith("1 copies waited over 60 s")
    VideoJob.objects.filter(pk=job.pk).update(
        wakeup_sent_at=None, claimed_by="dead:1:x", lease_expires_at=Now() - timedelta(1)
    )
    assert (
        "1 jobs are past their lease" in client.get("/healthz").json()["processes"]["jobs"]["error"]
    )


def test_a_spawned_qcluster_worker_makes_its_storage_clients_before_its_first_task(monkeypatch):
    """Its first copy then costs what the others do (the webhook's tail was that first copy)."""
    import threading
    from types import SimpleNamespace

    from avatars import jobs

    warmed: list[str] = []
    storage = SimpleNamespace(warm_up=lambda: warmed.append(threading.current_thread().name))
    monkeypatch.setattr(jobs, "VideoStorage", lambda: SimpleNamespace(storage=storage))
    post_spawn.send(sender="django_q", proc_name="Process-1:1")
    assert warmed == [threading.current_thread().name]  # the thread that runs its tasks
