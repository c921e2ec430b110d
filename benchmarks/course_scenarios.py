"""The course benchmark's scenarios: one deployment (qcluster workers, with or without the
engine's sweep and the webhook, on the ORM or the Redis broker), a course requested at once
or one video at a time, and what the world says afterwards (the fake provider's renders, the
job rows, each process's own counts)."""

import contextlib
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.course_processes import read_figures
from benchmarks.servers import BUCKET, ProcessGroup, RedisServer, free_port, wait_for_port

PROCESSES = "benchmarks.course_processes"


def log(message: str) -> None:
    print(f"[course {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Deployment:
    """What runs: the webhook (gunicorn receiving the fake's calls) or not, the engine's
    sweep (`run_video_engine`) or only the qcluster, and which broker."""

    webhook: bool = True
    engine: bool = True
    broker: str = "orm"

    def describe(self) -> str:
        parts = ["webhook" if self.webhook else "no webhook",
                 "engine" if self.engine else "qcluster only", f"{self.broker} broker"]  # fmt: skip
        return ", ".join(parts)


class Stack:
    """The processes of one scenario; every one is stopped (its whole group) on the way out."""

    def __init__(self, workdir: Path, name: str):
        self.workdir, self.name = workdir, name
        self.figures = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=workdir))
        self.processes: list[ProcessGroup] = []
        self.redis: RedisServer | None = None

    def start(self, command: str, *args: str, env: dict) -> ProcessGroup:
        env = dict(env, BENCH_FIGURES_DIR=str(self.figures))
        process = ProcessGroup("-m", PROCESSES, command, *args, env=env,
                               log=self.workdir / f"{self.name}-{command}.log")  # fmt: skip
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(timeout=5)
        if self.redis is not None:
            self.redis.stop()


def _wait(predicate, *, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


@contextlib.contextmanager
def broker_of(deployment: Deployment, redis: RedisServer | None):
    """This process's wake-ups (the request's "submit") go to the scenario's broker."""
    from django_q.conf import Conf

    if deployment.broker != "redis":
        yield
        return
    saved = Conf.ORM, Conf.REDIS
    Conf.ORM, Conf.REDIS = None, redis.url
    try:
        yield
    finally:
        Conf.ORM, Conf.REDIS = saved


def _cluster_ready(deployment: Deployment, redis: RedisServer | None) -> None:
    """A no-op task round trip: the cluster is up and taking tasks."""
    from django_q.models import Task
    from django_q.tasks import async_task

    with broker_of(deployment, redis):
        task_id = async_task("time.time", task_name="course-bench-ready")
    _wait(lambda: Task.objects.filter(id=task_id).exists(), timeout=90, what="the qcluster")
    Task.objects.all().delete()  # the scenario's tasks only from here on


def _transactions_committed() -> int | None:
    """PostgreSQL's count of committed transactions in this database (None on SQLite)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = "
                       "current_database()")  # fmt: skip
        return cursor.fetchone()[0]


class ConnectionPeak:
    """The most connections this database had open at once, sampled every 0.25 s on a
    thread of its own (PostgreSQL only)."""

    def __init__(self):
        self.peak, self.stopped = 0, threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        from django.db import connection

        try:
            while connection.vendor == "postgresql" and not self.stopped.wait(0.25):
                with connection.cursor() as cursor:
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                                   "current_database()")  # fmt: skip
                    self.peak = max(self.peak, cursor.fetchone()[0])
        finally:
            connection.close()

    def stop(self) -> int:
        self.stopped.set()
        self.thread.join(timeout=5)
        return self.peak


def clear_history() -> int:
    """Forget every job (the provider's render history with them): a fresh database."""
    from avatars.models import VideoJob

    return VideoJob.objects.all().delete()[0]


def _request(ctx: dict, name: str, count: int, spacing: float) -> tuple[float, list[int], int]:
    """The course's videos, at once (one batch request) or one request every `spacing` s;
    returns the request time, the job ids and the statements the requests sent."""
    from django.db import connection

    from avatars.services import avatar_video_request, avatar_video_request_batch
    from topics.models import Topic

    statements = [0]

    def counted(execute, sql, params, many, context):
        statements[0] += 1
        return execute(sql, params, many, context)

    topic = Topic.objects.create(title=f"Course ({name})", language="en")
    scripts = ctx["scripts"][:count]
    requested = time.time()
    with connection.execute_wrapper(counted):
        if not spacing:
            jobs = avatar_video_request_batch(topic=topic, scripts=scripts)
            return requested, [job.pk for job in jobs], statements[0]
        ids = []
        for n, script in enumerate(scripts):
            time.sleep(max(0.0, requested + n * spacing - time.time()))
            ids.append(avatar_video_request(topic=topic, script=script).pk)
    return requested, ids, statements[0]


def run_scenario(ctx: dict, name: str, deployment: Deployment, *, count: int,
                 spacing: float = 0.0) -> dict:  # fmt: skip
    """`count` videos through `deployment`; the world afterwards, per job and in total."""
    from avatars.models import VideoJob, WebhookEvent

    args, fake = ctx["args"], ctx["fake"]
    render = args.render_seconds
    fake.reset()
    fake.configure(render_seconds=render)
    env = dict(ctx["env"], VIDEO_MAX_CONCURRENT_RENDERS=str(count + 10))
    stack = Stack(ctx["workdir"], name)
    objects_before = len(ctx["s3"].keys(BUCKET))
    try:
        if deployment.broker == "redis":
            stack.redis = RedisServer(port=args.redis_port, log=ctx["workdir"] / "redis.log")
            env["Q_BROKER_URL"] = stack.redis.url
        if deployment.webhook:
            port = free_port()
            url = f"http://127.0.0.1:{port}/webhooks/heygen/"
            env["HEYGEN_WEBHOOK_SECRET"] = fake.register_webhook(url)
            # The production web server (Procfile): 2 workers x 4 threads.
            web_env = dict(env, DJANGO_ALLOWED_HOSTS="127.0.0.1")
            stack.start("gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2",
                        "--threads", "4", "--no-control-socket", env=web_env)  # fmt: skip
            wait_for_port(port, timeout=60)
        stack.start("qcluster", env=env)
        _cluster_ready(deployment, stack.redis)
        if deployment.engine:
            stack.start("run_video_engine", "--tick", str(args.tick), env=env)
        time.sleep(1.5)  # every process has connected and flushed its start-up counts
        before = read_figures(stack.figures)
        transactions_before = _transactions_committed()
        before_request, peak = time.time(), ConnectionPeak()
        log(f"{name}: {count} videos, R={render:g} s, {deployment.describe()}"
            + (f", one request every {spacing:g} s" if spacing else ", one batch"))  # fmt: skip
        with broker_of(deployment, stack.redis):
            requested, ids, request_statements = _request(ctx, name, count, spacing)
        # Generous: without a webhook nor engine a render is seen by the 1-minute schedule.
        timeout = count * spacing + render * 3 + 180
        try:
            _wait(lambda: not VideoJob.objects.filter(
                      pk__in=ids, state__in=VideoJob.ACTIVE_STATES).exists(),
                  timeout=timeout, what=f"{name}: the jobs")  # fmt: skip
        except RuntimeError as error:
            log(str(error))
        time.sleep(2.0)  # the last counts flushed, the task results saved
        peak_connections = peak.stop()
        figures = read_figures(stack.figures)
        transactions_after = _transactions_committed()
        renders = fake.renders()
        stats = fake.stats()
    finally:
        stack.stop()
    statements, shapes, connections = (
        {key: total - before[kind].get(key, 0) for key, total in figures[kind].items()}
        for kind in ("statements", "shapes", "connections")
    )
    statements["request"] = request_statements
    jobs = list(VideoJob.objects.filter(pk__in=ids))
    received = WebhookEvent.objects.filter(provider_video_id__in=[job.provider_video_id
                                                                  for job in jobs])  # fmt: skip
    world = {
        "jobs": jobs,
        "webhooks": dict(received.values_list("provider_video_id", "received_at")),
        "renders": {render["id"]: render for render in renders},
        "copies": figures["copies"],
        "task_runs": [run for run in figures["tasks"] if run[3] >= before_request],
        "statements": statements,
        "shapes": shapes,
        "connections": {key: n for key, n in connections.items() if n},
        "peak_connections": peak_connections,
        "transactions": (
            transactions_after - transactions_before if transactions_before is not None else None
        ),  # fmt: skip
        "stats": stats,
        "objects_stored": len(ctx["s3"].keys(BUCKET)) - objects_before,
        "requested": requested,
        "tasks": _task_seconds(),
    }
    return world


def _task_seconds() -> dict:
    """Worker-seconds by task function (started: when the worker began it; see
    course_processes), from django-q2's saved results (the last 500 successful ones)."""
    from django_q.models import Task

    seconds: dict[str, float] = {}
    for func, started, stopped in Task.objects.exclude(name="course-bench-ready").values_list(
        "func", "started", "stopped"
    ):
        name = func.rsplit(".", 1)[-1]
        seconds[name] = seconds.get(name, 0.0) + (stopped - started).total_seconds()
    return seconds


def old_schedule_checks(render: float, first: float = 10.0, factor: float = 1.5) -> tuple:
    """The previous design's checks of one render (the first at `first` s, each next interval
    x`factor`): (status checks until one sees it done, when that check runs)."""
    at, checks = first, 1
    while at < render:
        at += first * factor**checks
        checks += 1
    return checks, at
