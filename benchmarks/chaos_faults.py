"""The faults of `make chaos`, each injected for real: the fake provider misbehaving over HTTP,
the S3 link cut mid-transfer, a database trigger failing or holding the save, a worker's
process group killed with SIGKILL, concurrent HTTP requests to the real views.

Each fault's `run(world, rng)` starts one run and returns the ids of the jobs it made; the
caller settles them, reconciles and measures. A run records what it saw in `world.notes`.
"""

import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection
from django.test import Client

from avatars import jobs, services
from avatars.models import VideoJob
from benchmarks.chaos_world import ENGINE_TICK, WEBHOOK_SECRET, World
from tests.faults import failing_content_item_writes
from topics.models import ContentItem, Topic
from videostore import ledger
from videostore.models import UploadLedgerEntry

State = VideoJob.State
SCRIPT = "Chaos lesson: light, water and leaves make sugar."
MiB = 1024 * 1024


def new_job(world: World, *, enqueue: bool = False) -> VideoJob:
    topic = Topic.objects.create(title="Chaos", language="en")
    return services.avatar_video_request(topic=topic, script=SCRIPT, enqueue_submit=enqueue)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def job_state(job_id: int) -> str:
    return VideoJob.objects.filter(pk=job_id).values_list("state", flat=True).first() or ""


def join(threads: list[threading.Thread], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def stored_item(world: World) -> tuple[VideoJob, ContentItem]:
    """A first generation, run to `stored`: what the regenerate faults start from."""
    job = new_job(world)
    join(world.drive([job.pk]))
    job.refresh_from_db()
    return job, ContentItem.objects.get(pk=job.content_item_id)


# --- the provider ---------------------------------------------------------------------------


def provider_429(world: World, rng: random.Random) -> list[int]:
    """generate answers 429 + Retry-After 1 (render slots busy) 1 to 3 times."""
    world.fake.set_fault("generate_429", rng.randint(1, 3))
    job = new_job(world)
    join(world.drive([job.pk]))
    return [job.pk]


def provider_500(world: World, rng: random.Random) -> list[int]:
    """generate answers 500 1 to 3 times (the client retries within its deadline)."""
    world.fake.set_fault("generate_500", rng.randint(1, 3))
    job = new_job(world)
    join(world.drive([job.pk]))
    return [job.pk]


def provider_timeout(world: World, rng: random.Random) -> list[int]:
    """Every API call answers after 1.5 s (the client's timeout is 1 s) for 1 to 4 s: a
    timed-out generate may still have started a render."""
    world.fake.set_fault("slow", 1.5)
    timer = threading.Timer(rng.uniform(1.0, 4.0), world.fake.faults.pop, args=("slow", None))
    timer.start()
    job = new_job(world)
    join(world.drive([job.pk]))
    timer.join()
    world.notes.append(f"renders paid for: {world.fake.stats['renders_created']}")
    return [job.pk]


def truncated_body(world: World, rng: random.Random) -> list[int]:
    """The download announces the full length, sends half and closes (the first 1-2 times)."""
    world.fake.set_fault("truncated_body", True)
    bad_downloads = rng.randint(1, 2)

    def heal() -> None:
        wait_for(lambda: world.fake.stats["downloads"] >= bad_downloads, 60)
        time.sleep(0.2)
        world.fake.faults.pop("truncated_body", None)

    healer = threading.Thread(target=heal, daemon=True)
    healer.start()
    job = new_job(world)
    join(world.drive([job.pk]))
    return [job.pk]


# --- storage --------------------------------------------------------------------------------


def storage_cut_mid_upload(world: World, rng: random.Random) -> list[int]:
    """A 32 MiB MP4 streams into storage in 8 MiB multipart parts; the link is cut after
    10-24 MiB and comes back 0.5-6 s later (the upload's cleanup may or may not get through)."""
    world.fake.set_fault("serve_file", str(world.big_video))
    world.fake.set_fault("slow_download", 4.0)
    cut_after = rng.randint(10, 24) * MiB
    job = new_job(world)
    threads = world.drive([job.pk])
    copied = VideoJob.objects.filter(pk=job.pk, state=State.UPLOADING, bytes_copied__gte=cut_after)
    if wait_for(copied.exists, 60):
        world.link.cut()
        world.notes.append(f"cut at {cut_after // MiB} MiB")
    time.sleep(rng.uniform(0.5, 6.0))  # an outage of a few seconds, or the whole retry
    world.link.restore()
    join(threads)
    return [job.pk]


def storage_down_on_delete(world: World, rng: random.Random) -> list[int]:
    """Regenerate a stored video; storage goes down when the old object's DELETE is sent.
    Then the link comes back and the ledger's `retry_pending_deletes` runs."""
    first, item = stored_item(world)
    world.link.cut_on(b"DELETE ")
    job = services.avatar_video_regenerate(content_item=item)
    join(world.drive([job.pk]))
    failed = UploadLedgerEntry.objects.filter(intent=UploadLedgerEntry.Intent.DELETE).count()
    world.notes.append(f"deletes kept in the ledger: {failed}")
    world.link.restore()
    ledger.retry_pending_deletes()
    return [first.pk, job.pk]


# --- the database ---------------------------------------------------------------------------


def db_error_on_save(world: World, rng: random.Random) -> list[int]:
    """A trigger fails the content item update that would reference the uploaded object."""
    job = new_job(world)
    with failing_content_item_writes():
        join(world.drive([job.pk]))
    return [job.pk]


_PG_SLOW_FUNCTION = """
CREATE OR REPLACE FUNCTION chaos_slow_save() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep({seconds}); RETURN NEW; END $$ LANGUAGE plpgsql
"""
_PG_SLOW_TRIGGER = """
CREATE TRIGGER chaos_slow_save BEFORE UPDATE ON topics_contentitem FOR EACH ROW
WHEN (NEW.storage_path <> '' AND NEW.storage_path IS DISTINCT FROM OLD.storage_path)
EXECUTE FUNCTION chaos_slow_save()
"""
_SQLITE_SLOW = """
CREATE TRIGGER chaos_slow_save BEFORE UPDATE ON topics_contentitem
WHEN NEW.storage_path != '' AND NEW.storage_path != OLD.storage_path
BEGIN SELECT sum(a.x * b.x + c.x) FROM chaos_spin a, chaos_spin b, chaos_spin c; END;
"""
HOLD_SECONDS = 4


class slow_saves:
    """A trigger that holds the save of an item's new object for about HOLD_SECONDS
    (pg_sleep on PostgreSQL; SQLite has no sleep: a cross join sized to take that long)."""

    def __enter__(self):
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute(_PG_SLOW_FUNCTION.format(seconds=HOLD_SECONDS))
                cursor.execute(_PG_SLOW_TRIGGER)
            else:
                cursor.execute("CREATE TABLE IF NOT EXISTS chaos_spin (x INTEGER)")
                cursor.execute("DELETE FROM chaos_spin")
                rows = [(n,) for n in range(_spin_rows(cursor))]
                cursor.executemany("INSERT INTO chaos_spin VALUES (%s)", rows)
                cursor.execute(_SQLITE_SLOW)
        return self

    def __exit__(self, *exc):
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER IF EXISTS chaos_slow_save"
                           + (" ON topics_contentitem" if connection.vendor == "postgresql"
                              else ""))  # fmt: skip
            if connection.vendor == "postgresql":
                cursor.execute("DROP FUNCTION IF EXISTS chaos_slow_save()")
        return False


_spin_calibrated: list[int] = []


def _spin_rows(cursor) -> int:
    """Rows for the SQLite cross join to take about HOLD_SECONDS here (cubic in rows)."""
    if not _spin_calibrated:
        cursor.execute("CREATE TEMP TABLE chaos_probe AS SELECT 0 AS x")
        for _ in range(7):
            cursor.execute("INSERT INTO chaos_probe SELECT x + 1 FROM chaos_probe")
        started = time.monotonic()
        cursor.execute("SELECT sum(a.x * b.x + c.x) FROM chaos_probe a, chaos_probe b,"
                       " chaos_probe c")  # fmt: skip
        seconds = max(time.monotonic() - started, 1e-3)
        cursor.execute("DROP TABLE chaos_probe")
        _spin_calibrated.append(int(128 * (HOLD_SECONDS / seconds) ** (1 / 3)))
    return _spin_calibrated[0]


def sweep_during_save(world: World, rng: random.Random) -> list[int]:
    """While the save of a new object is held in the database, `manage.py reconcile_storage
    --fix --grace-seconds 0` runs in another process (its own Django, its own connection)."""
    job = new_job(world)
    with slow_saves():
        threads = world.drive([job.pk])
        wait_for(lambda: job_state(job.pk) != State.QUEUED and world.bucket(), 30, 0.05)
        time.sleep(rng.uniform(0.0, 0.5))
        sweep = world.start("reconcile_storage", "--fix", "--grace-seconds", "0", "--json")
        sweep.process.wait(timeout=60)
        ended_first = job_state(job.pk) in VideoJob.ACTIVE_STATES
        world.notes.append(
            f"sweep exit {sweep.process.returncode}, "
            + ("ended while the save was held" if ended_first else "ended after the save")
        )
        sweep.stop()
        join(threads)
    world.processes.remove(sweep)
    return [job.pk]


# --- processes ------------------------------------------------------------------------------


class KillNine:
    """Two qcluster process groups and two engines; in each run the process holding the
    job's copy (a worker, or an engine whose check found the render done and copies it on its
    own threads) is SIGKILLed while the job is `uploading`, and a fresh one starts. The other
    engine's sweep takes the copy over when the dead holder's lease ends."""

    def setup(self, world: World) -> None:
        world.fake.reset()
        self.engines = [world.start("run_video_engine", "--tick", str(ENGINE_TICK))
                        for _ in range(2)]  # fmt: skip
        self.workers = [world.start("qcluster") for _ in range(2)]
        # Both engines started and warmed before the first run, as after each restart below
        # (else the first run measures their start-up: copy threads making storage clients).
        for engine in self.engines:
            if not wait_for(lambda engine=engine: _sweeping(engine), 60):
                world.notes.append("an engine did not sweep within 60 s")
        time.sleep(ENGINE_WARM_UP_SECONDS)

    def teardown(self, world: World) -> None:
        for process in [*self.engines, *self.workers]:
            process.stop()

    def __call__(self, world: World, rng: random.Random) -> list[int]:
        # 4 MiB over 2.5 s: pauses of 0.5 s, under the client's 1 s read timeout.
        world.fake.set_fault("serve_file", str(world.medium_video))
        world.fake.set_fault("slow_download", 2.5)
        job = new_job(world, enqueue=True)
        uploading = VideoJob.objects.filter(pk=job.pk, state=State.UPLOADING)
        if not wait_for(uploading.exists, 60):
            world.notes.append("never uploading")
            return [job.pk]
        time.sleep(rng.uniform(0.1, 2.2))  # sometimes after the bytes, during the save
        token = VideoJob.objects.filter(pk=job.pk).values_list("claimed_by", flat=True).first()
        holder_pid = int(token.split(":")[1]) if token else 0
        holders = [p for p in [*self.engines, *self.workers] if holder_pid in p.group_pids()]
        victim = holders[0] if holders else rng.choice(self.workers)
        state = job_state(job.pk)
        world.kill(victim)
        world.fake.faults.pop("slow_download", None)  # the copy taken over runs at full speed
        kind = "engine" if victim in self.engines else "worker"
        world.notes.append(f"killed {'the holder' if holders else 'a'} {kind} in {state}")
        if victim in self.engines:
            self.engines.remove(victim)
            self.engines.append(engine := world.start("run_video_engine", "--tick",
                                                      str(ENGINE_TICK)))  # fmt: skip
            # As a supervisor's restart ends: the next run's holder may be the other engine,
            # and this one must be sweeping by then (else the run measures its start-up).
            if not wait_for(lambda: _sweeping(engine), 60):
                world.notes.append("the restarted engine did not sweep within 60 s")
            time.sleep(ENGINE_WARM_UP_SECONDS)  # its copy threads' start-up
        else:
            self.workers.remove(victim)
            self.workers.append(world.start("qcluster"))
        return [job.pk]


def _sweeping(engine) -> bool:
    """The engine process has swept (its heartbeat names it)."""
    from avatars.models import ProcessHeartbeat

    names = [f":{pid}" for pid in engine.group_pids() | {engine.process.pid}]
    seen = ProcessHeartbeat.objects.filter(kind="engine").values_list("name", flat=True)
    return any(name.endswith(suffix) for name in seen for suffix in names)


#: How long an engine's copy threads take to make their storage clients after its first
#: sweep, on this machine (10 threads, each its own boto3 session and clients, all at once:
#: the engine's other threads get little of the interpreter meanwhile). Takeovers have their
#: own threads since, so a takeover no longer waits for the others to be ready (with 3 s and
#: one shared pool, 2 runs in 20 timed a takeover queued behind that start-up: 2.5 to 3.3 s).
ENGINE_WARM_UP_SECONDS = 8


# --- HTTP -----------------------------------------------------------------------------------


def _signed_event(job: VideoJob, video_url: str) -> tuple[bytes, str]:
    body = json.dumps({"event_type": "avatar_video.success", "event_data": {
        "video_id": job.provider_video_id, "url": video_url, "callback_id": str(job.callback_id),
    }}).encode()  # fmt: skip
    return body, hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def _post(path: str, *, body: bytes = b"", user=None, headers: dict | None = None):
    """One POST to the real view, in its own thread's database connection."""
    try:
        client = Client()
        if user is not None:
            client.force_login(user)
        if body:
            return client.post(path, data=body, content_type="application/json",
                               headers=headers or {})  # fmt: skip
        return client.post(path)
    finally:
        connection.close()


def _at_once(*calls: Callable[[], object]) -> list:
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(index: int, call) -> None:
        barrier.wait()
        results[index] = call()

    threads = [threading.Thread(target=run, args=(n, call)) for n, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    join(threads, 60)
    return results


def duplicate_webhook(world: World, rng: random.Random) -> list[int]:
    """The provider's success event, validly signed, posted twice: at once, or the replay
    after the job stored its video."""
    world.fake.render_seconds = 0.3
    job = new_job(world)
    jobs.submit_queued_jobs()
    job.refresh_from_db()
    video = world.fake.videos.get(job.provider_video_id, {})
    wait_for(lambda: video.get("status") == "completed", 10)
    body, signature = _signed_event(job, world.fake.video_url(job.provider_video_id))
    headers = {"X-HeyGen-Signature": signature}

    def post():
        return _post("/webhooks/heygen/", body=body, headers=headers)

    if rng.random() < 0.5:
        responses = _at_once(post, post)
        join(world.drive([job.pk]))
    else:
        responses = [post()]
        join(world.drive([job.pk]))
        responses.append(post())
    statuses = sorted(r.json().get("status", str(r.status_code)) for r in responses)
    world.notes.append("webhook answers: " + ", ".join(statuses))
    if statuses.count("duplicate") != 1:
        world.findings.append(f"job {job.pk}: the same body was handled {statuses}")
    return [job.pk]


def concurrent_regenerate(world: World, rng: random.Random) -> list[int]:
    """Two regenerate requests for one stored item at the same moment, to the studio view."""
    first, item = stored_item(world)
    path = f"/topics/{item.topic_id}/videos/{item.pk}/regenerate/"
    responses = _at_once(*[lambda: _post(path, user=world.user)] * 2)
    codes = sorted(str(getattr(r, "status_code", "none")) for r in responses)
    new_jobs = list(VideoJob.objects.filter(content_item=item).exclude(pk=first.pk)
                    .values_list("pk", flat=True))  # fmt: skip
    world.notes.append(f"answers {', '.join(codes)}; new jobs {len(new_jobs)}")
    if len(new_jobs) != 1:
        world.findings.append(f"item {item.pk}: {len(new_jobs)} jobs for two regenerates")
    join(world.drive(new_jobs))
    return [first.pk, *new_jobs]


@dataclass(frozen=True)
class Fault:
    name: str
    run: Callable[[World, random.Random], list[int]]


FAULTS = [
    Fault("provider 429", provider_429),
    Fault("provider 500", provider_500),
    Fault("provider timeout (slow)", provider_timeout),
    Fault("truncated body", truncated_body),
    Fault("storage cut mid-upload", storage_cut_mid_upload),
    Fault("storage down on delete", storage_down_on_delete),
    Fault("DB error on save", db_error_on_save),
    Fault("kill -9 between upload and commit", KillNine()),
    Fault("sweep during a save", sweep_during_save),
    Fault("duplicate webhook", duplicate_webhook),
    Fault("concurrent regenerate", concurrent_regenerate),
]
