"""The world a chaos run happens in: real servers, a real database, workers, and the measures.

moto's S3 server in its own process, reached through a TCP relay that can be cut; the fake
HeyGen server (a thread of this process, so faults are set directly); PostgreSQL
(CHAOS_DATABASE_URL) or a SQLite file; `manage.py qcluster` / `run_video_engine` processes
for the faults that kill workers. Each run starts from an empty bucket and empty tables and
ends with `reconcile_storage --fix --grace-seconds 0`, then the world is measured from outside:
the bucket listed directly (not through the relay), the rows read back.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

from benchmarks.chaos_deaths import DeathWatch
from tests.servers import S3Server, TcpProxy, free_port

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "media"
PREFIX = "avatar_videos/"
WEBHOOK_SECRET = "whsec_chaos_0123456789abcdef"
LEASE_SECONDS = 2
#: The tick of every `run_video_engine` a run starts (`--tick`).
ENGINE_TICK = 0.3
SQLITE_PATH = Path(tempfile.gettempdir()) / "cs-chaos.sqlite3"
#: Databases a chaos run must never touch: the project's own and the test suite's.
FORBIDDEN_DATABASES = ("contentstudio",)


class FaultyLink(TcpProxy):
    """The S3 link, cuttable now (`cut`) or at the first request starting with given bytes
    (`cut_on(b"DELETE ")`: storage goes down exactly when the delete is sent)."""

    def __init__(self, target_port: int):
        self.trip_on: bytes | None = None
        self.tripped = 0
        super().__init__(target_port)

    def cut_on(self, request_start: bytes) -> None:
        self.trip_on = request_start

    def restore(self) -> None:
        self.trip_on = None
        super().restore()

    def _drops(self, chunk: bytes) -> bool:
        trip_on = self.trip_on
        if trip_on and chunk.startswith(trip_on):
            self.trip_on = None
            self.tripped += 1
            self.cut()
            return True
        return super()._drops(chunk)


def _database_url() -> tuple[str, str]:
    """(URL, label) of the chaos database: CHAOS_DATABASE_URL (PostgreSQL), else a SQLite file."""
    url = os.environ.get("CHAOS_DATABASE_URL", "").strip()
    if not url:
        SQLITE_PATH.unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            Path(f"{SQLITE_PATH}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{SQLITE_PATH}", f"SQLite file {SQLITE_PATH}"
    name = url.rsplit("/", 1)[-1].split("?")[0]
    if name in FORBIDDEN_DATABASES or name.startswith("test"):
        raise SystemExit(f"refusing to run chaos against database {name!r}; create your own "
                         "(createdb -h 127.0.0.1 -U postgres cs_chaos)")  # fmt: skip
    return url, f"PostgreSQL database {name}"


def _environment(s3_endpoint: str, heygen_port: int, database_url: str) -> dict:
    return {
        "DJANGO_SETTINGS_MODULE": "contentstudio.settings",
        "DJANGO_SECRET_KEY": "chaos-secret-key-0123456789-0123456789-0123456789-0123",
        "DJANGO_DEBUG": "0",
        "DJANGO_DEV_TOOLS": "1",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_ALLOWED_HOSTS": "testserver,127.0.0.1",
        "DATABASE_URL": database_url,
        "DATABASE_CONN_MAX_AGE": "0",
        "LOG_LEVEL": os.environ.get("CHAOS_LOG_LEVEL", "CRITICAL"),
        "DJANGO_STATIC_MANIFEST": "0",  # pages rendered here need no collectstatic
        "SUPABASE_URL": "https://chaos.supabase.co",
        "SUPABASE_S3_ENDPOINT": s3_endpoint,
        "SUPABASE_S3_ACCESS_KEY_ID": "chaos-key",
        "SUPABASE_S3_SECRET_ACCESS_KEY": "chaos-secret",
        "SUPABASE_STORAGE_BUCKET": BUCKET,
        "AVATAR_PROVIDER": "heygen",
        "HEYGEN_API_KEY": "fake-heygen-key",
        "HEYGEN_API_BASE": f"http://127.0.0.1:{heygen_port}",
        "HEYGEN_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "HEYGEN_REQUEST_TIMEOUT_SECONDS": "1",
        "VIDEO_POLL_INTERVAL_SECONDS": "0.2",
        "VIDEO_POLL_MAX_INTERVAL_SECONDS": "0.5",
        "VIDEO_MAX_CONCURRENT_RENDERS": "10",
        "AVATAR_DOWNLOAD_ALLOWED_HOSTS": f"127.0.0.1:{heygen_port}",
        "VIDEO_JOB_LEASE_SECONDS": str(LEASE_SECONDS),
        "VIDEO_JOB_RETRY_BASE_SECONDS": "1",
        "VIDEO_JOB_MAX_ATTEMPTS": "4",
        "VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS": "2",
        "Q_WORKERS": "1",
        "Q_TIMEOUT_SECONDS": "120",
        "Q_RETRY_SECONDS": "150",
    }


MANAGE = (sys.executable, "manage.py")


class Process:
    """A long-running command (`manage.py ...` unless `program` says otherwise) in its own
    process group (killable as a whole); its stderr goes to a log file, never to a pipe
    nobody reads. `env`: variables added to this process's environment."""

    def __init__(self, *command: str, log_dir: Path, env: dict | None = None,
                 program: tuple[str, ...] = MANAGE):  # fmt: skip
        log_dir.mkdir(parents=True, exist_ok=True)
        name = Path(command[0] if program == MANAGE else program[-1]).name
        self.log = (log_dir / f"{name}-{time.monotonic_ns()}.log").open("wb")
        self.process = subprocess.Popen(
            [*program, *command], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=self.log,
            start_new_session=True, env={**os.environ, **(env or {})},
        )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def group_pids(self) -> set[int]:
        found = subprocess.run(["pgrep", "-g", str(self.process.pid)], capture_output=True,
                               text=True, check=False)  # fmt: skip
        return {int(pid) for pid in found.stdout.split()}

    def kill(self) -> None:
        """SIGKILL to the whole process group: no handler, no cleanup. Also when the group's
        first process has already exited (a qcluster whose sentinel was killed exits and
        leaves its workers running without a parent)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.alive:
            self.process.wait(timeout=10)
        self.log.close()

    def stop(self) -> None:
        if self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        with contextlib.suppress(ProcessLookupError):  # children a dead parent left behind
            os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


@dataclass
class RunResult:
    """What one run left behind, measured after `reconcile_storage --fix`."""

    orphans: int = 0
    dangling: int = 0
    lost: int = 0
    stuck: int = 0
    stale_multipart: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    swept: int = 0  # objects and multipart uploads the fix removed (the ledger's design)
    requested: int = 0  # videos requested in the run (each job, a regenerate's too)
    renders: int = 0  # renders the fake HeyGen created (paid for)
    max_in_progress: int = 0  # the fake's own most renders in progress at once
    waits: list = field(default_factory=list)  # DeathWatch.Wait, one per job a kill left
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return self.orphans + self.dangling + self.lost + self.stuck + self.stale_multipart


class World:
    """Servers, database and processes for all the runs; `reset` between runs."""

    def __init__(self) -> None:
        self.log_dir = Path(tempfile.mkdtemp(prefix="cs-chaos-logs-"))
        self.processes: list[Process] = []
        self.crashes: list[str] = []  # exceptions escaping run_job_inline (a finding)
        self.notes: list[str] = []  # what the current run saw
        self.findings: list[str] = []  # what the current run saw go wrong besides the columns
        self.big_video: Path | None = None  # 32 MiB: a multipart upload
        self.medium_video: Path | None = None  # 4 MiB: one PUT, streamed for seconds
        self.quick = False  # `--quick`: faults that run for a while run shorter
        self.deaths = DeathWatch()
        self.s3 = S3Server().start()
        self.s3.create_bucket(BUCKET)
        self.link = FaultyLink(self.s3.port)
        heygen_port = free_port()
        database_url, self.database_label = _database_url()
        os.environ.update(_environment(self.link.endpoint, heygen_port, database_url))
        import django

        django.setup()
        from django.core.management import call_command

        from devtools.fake_heygen import FakeHeyGenServer

        call_command("migrate", verbosity=0, interactive=False)
        self.fake = FakeHeyGenServer(port=heygen_port).start()
        # A client that timed out leaves the fake a broken pipe: expected, not worth a traceback.
        self.fake.httpd.handle_error = lambda request, client_address: None
        self.user = self._chaos_user()

    def _chaos_user(self):
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        user = user_model.objects.filter(username="chaos").first()
        return user or user_model.objects.create_superuser("chaos", "chaos@example.com", None)

    @property
    def vendor(self) -> str:
        from django.db import connection

        return connection.vendor

    def start(self, *command: str, env: dict | None = None,
              program: tuple[str, ...] = MANAGE) -> Process:  # fmt: skip
        process = Process(*command, log_dir=self.log_dir, env=env, program=program)
        self.processes.append(process)
        return process

    def kill(self, process: Process) -> list[int]:
        """SIGKILL a whole process group and watch the jobs it held (`DeathWatch`); the
        process is forgotten. Returns the ids of the jobs it held."""
        pids = process.group_pids() | {process.process.pid}
        killed_at = self.deaths.now()
        process.kill()
        if process in self.processes:
            self.processes.remove(process)
        return self.deaths.killed(pids, killed_at)

    def kill_pid(self, pid: int) -> list[int]:
        """SIGKILL one process (a worker of a cluster) and watch the jobs it held."""
        killed_at = self.deaths.now()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return self.deaths.killed({pid}, killed_at)

    def close(self) -> None:
        for process in self.processes:
            process.stop()
        with contextlib.suppress(Exception):
            self.fake.stop()
        self.link.close()
        self.s3.stop()

    # --- between runs ---------------------------------------------------------------------

    def reset(self) -> None:
        """Empty tables, bucket and unfinished uploads; a healthy link and a well fake."""
        from django.db import connection
        from django_q.models import OrmQ, Task

        from avatars.models import VideoJob, WebhookEvent
        from topics.models import Topic
        from videostore.models import UploadLedgerEntry

        self.link.restore()
        self.fake.reset()
        self.notes, self.findings = [], []
        VideoJob.objects.all().delete()
        Topic.objects.all().delete()
        for model in (UploadLedgerEntry, WebhookEvent, OrmQ, Task):
            model.objects.all().delete()
        connection.close()
        client = self.s3.client()
        for upload in client.list_multipart_uploads(Bucket=BUCKET).get("Uploads", []):
            client.abort_multipart_upload(Bucket=BUCKET, Key=upload["Key"],
                                          UploadId=upload["UploadId"])  # fmt: skip
        for key in self.s3.keys(BUCKET):
            client.delete_object(Bucket=BUCKET, Key=key)

    # --- driving jobs ---------------------------------------------------------------------

    def drive(self, job_ids: list[int]) -> list[threading.Thread]:
        """Run each job to its end in this process (`run_job_inline`, the workers' steps),
        one thread each; returns the threads (daemons: a hung job is measured as stuck)."""
        from django.db import connection

        from avatars.inline import run_job_inline
        from avatars.models import VideoJob

        def run(job_id: int) -> None:
            try:
                run_job_inline(job_id, poll_interval=0.1)
            except Exception as error:  # recorded: a crash of the engine is a finding
                if not VideoJob.objects.filter(pk=job_id).exists():
                    self.notes.append(f"job {job_id} deleted with its item while it ran")
                    return
                self.crashes.append(f"job {job_id}: {error.__class__.__name__}: {error}")
            finally:
                connection.close()

        threads = [threading.Thread(target=run, args=(job_id,), daemon=True) for job_id in job_ids]
        for thread in threads:
            thread.start()
        return threads

    def settle(self, job_ids: list[int], *, timeout: float = 90) -> None:
        """Wait until the jobs are terminal (or the timeout: they count as stuck), then until
        every lease the run took has expired."""
        from django.db.models import Max
        from django.utils import timezone

        from avatars.models import VideoJob
        from videostore.models import UploadLedgerEntry

        deadline = time.monotonic() + timeout
        active = VideoJob.objects.filter(pk__in=job_ids, state__in=VideoJob.ACTIVE_STATES)
        while active.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        latest = max(
            (when for when in (
                VideoJob.objects.aggregate(t=Max("lease_expires_at"))["t"],
                UploadLedgerEntry.objects.aggregate(t=Max("lease_expires_at"))["t"],
            ) if when is not None),
            default=None,
        )  # fmt: skip
        if latest is not None:
            time.sleep(max(0.0, min((latest - timezone.now()).total_seconds() + 0.2, 10)))

    # --- measuring ------------------------------------------------------------------------

    def reconcile(self, *args: str) -> tuple[int, dict]:
        from tests.builders import run_command

        out = StringIO()
        code = run_command("reconcile_storage", "--json", "--grace-seconds", "0", *args,
                           stdout=out)  # fmt: skip
        text = out.getvalue().strip()
        return code, json.loads(text) if text else {}

    def bucket(self) -> dict[str, int]:
        """The bucket as storage itself lists it (directly, not through the link)."""
        paginator = self.s3.client().get_paginator("list_objects_v2")
        return {
            entry["Key"]: entry["Size"]
            for page in paginator.paginate(Bucket=BUCKET, Prefix=PREFIX)
            for entry in page.get("Contents", [])
        }

    def multipart_uploads(self) -> int:
        uploads = self.s3.client().list_multipart_uploads(Bucket=BUCKET, Prefix=PREFIX)
        return len(uploads.get("Uploads", []))

    def _losses(self, job_ids: list[int]) -> tuple[set, set, set]:
        """(orphan keys, dangling item ids, lost videos) as things stand now."""
        from avatars.models import VideoJob
        from topics.models import ContentItem
        from topics.objects import stored_objects

        objects = self.bucket()
        rows = ContentItem.objects.filter(content_type=ContentItem.ContentType.AVATAR_VIDEO)
        referenced, dangling, lost = set(), set(), set()
        for item in rows.only("pk", "storage_path", "poster_path", "captions_path", "status",
                              "content_data"):  # fmt: skip
            pk, path, status = item.pk, item.storage_path, item.status
            missing = bool(path) and path not in objects
            for stored in stored_objects(item):  # the video, its poster and its captions
                referenced.add(stored.storage_path)
                size = objects.get(stored.storage_path)
                if size is None or (stored.size is not None and stored.size != size):
                    dangling.add(pk)
            if status == ContentItem.Status.READY and (not path or missing):
                lost.add(("item", pk))
        for job_pk, item_pk in VideoJob.objects.filter(
            pk__in=job_ids, state=VideoJob.State.STORED
        ).values_list("pk", "content_item_id"):
            path = ContentItem.objects.filter(pk=item_pk).values_list("storage_path", flat=True)
            if not path or not path[0] or path[0] not in objects:
                lost.add(("job", job_pk))
        return set(objects) - referenced, dangling, lost

    def measure(self, job_ids: list[int]) -> RunResult:
        """Dangling rows and lost videos before the fix (it would only relabel them) and
        after; orphans, stale multipart uploads and the jobs' states after it."""
        from avatars.models import VideoJob

        result = RunResult()
        _, dangling_before, lost_before = self._losses(job_ids)
        if left := self.multipart_uploads():
            result.notes.append(f"{left} unfinished multipart upload(s) before the fix")
        code, report = self.reconcile("--fix")
        if code != 0:
            result.notes.append(f"reconcile --fix exit {code}")
        result.swept = report.get("deleted_orphans", 0) + report.get("aborted_multipart_uploads", 0)
        orphans, dangling_after, lost_after = self._losses(job_ids)
        result.orphans = len(orphans)
        result.dangling = len(dangling_before | dangling_after)
        result.lost = len(lost_before | lost_after)
        result.stale_multipart = self.multipart_uploads()
        if deleted := len(set(job_ids)) - VideoJob.objects.filter(pk__in=job_ids).count():
            result.outcomes["deleted"] = deleted  # with their item (a delete fault)
        for job in VideoJob.objects.filter(pk__in=job_ids):
            result.outcomes[job.state] = result.outcomes.get(job.state, 0) + 1
            if job.is_active or (job.state == VideoJob.State.FAILED and not job.last_error):
                result.stuck += 1
                result.notes.append(f"job {job.pk} stuck in {job.state} {job.last_error[:80]!r}")
            elif job.state == VideoJob.State.FAILED:
                result.notes.append(f"job {job.pk} failed: {job.last_error[:100]}")
        code_after, _ = self.reconcile()
        if code_after != 0:
            result.notes.append(f"reconcile after the fix exit {code_after}")
        return result
