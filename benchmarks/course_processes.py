"""The course benchmark's measured processes, started through this module so that each one
counts its SQL statements and times its copies without changing what it runs:

    python -m benchmarks.course_processes qcluster|run_video_engine|gunicorn [args...]

Every statement Django sends (the same ones `connection.queries` lists with DEBUG on, without
DEBUG's memory growth) is counted under the step that sent it: the django-q2 task a worker
runs (`submit_queued_jobs`, `check_render_job`, `copy` for a copy, also when it runs inside
the check task), `sweep` in the engine, `webhook` in the web server (gunicorn, as in the
Procfile); statements on django-q2's own tables (the ORM broker's queue, task results,
schedules) count as `broker`, and the liveness records (/healthz) as `heartbeat`. Each process
writes its figures to BENCH_FIGURES_DIR/<command>-<pid>.json twice a second.
"""

import atexit
import json
import os
import re
import sys
import threading
import time
from pathlib import Path

FLUSH_SECONDS = 0.5
#: A statement's shape for the breakdown: its verb and first table.
TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)', re.IGNORECASE)
#: The step a process's statements count under when no task or copy is running.
DEFAULT_STEP = {"qcluster": "cluster", "run_video_engine": "sweep", "gunicorn": "webhook"}


class Figures:
    """One process's counts (a forked worker starts its own: counted by pid)."""

    def __init__(self, folder: Path, command: str):
        self.folder, self.command = folder, command
        self.default_step = DEFAULT_STEP[command]
        self.lock = threading.Lock()
        self.pid = 0
        self.statements: dict[str, int] = {}
        self.shapes: dict[str, int] = {}
        self.connections: dict[str, int] = {}
        self.copies: dict[str, list] = {}
        self.tasks: list[list] = []
        self.task: str | None = None
        self.local = threading.local()

    def _this_process(self) -> None:
        if self.pid != os.getpid():
            with self.lock:
                if self.pid != os.getpid():
                    self.pid = os.getpid()
                    self.statements, self.shapes, self.copies = {}, {}, {}
                    self.connections, self.tasks, self.task = {}, [], None
                    threading.Thread(target=self._flush_forever, daemon=True).start()

    @property
    def step(self) -> str:
        # A copy (thread-local), else the task this worker process runs (its helper threads
        # included: a worker runs one task at a time), else the process's own work.
        return getattr(self.local, "step", None) or self.task or self.default_step

    def count_connection(self) -> None:
        self._this_process()
        name = f"{self.step} ({threading.current_thread().name.split('-')[0]} thread)"
        with self.lock:
            self.connections[name] = self.connections.get(name, 0) + 1

    def count_statement(self, execute, sql, params, many, context):
        """A Django execute wrapper: one count per statement, by step."""
        self._this_process()
        if "django_q_" in sql:
            name = "broker"
        elif "processheartbeat" in sql:
            name = "heartbeat"
        else:
            name = self.step
        table = TABLE.search(sql)
        shape = f"{name}: {sql.lstrip().split(None, 1)[0].upper()} {table[1] if table else ''}"
        with self.lock:
            self.statements[name] = self.statements.get(name, 0) + 1
            self.shapes[shape] = self.shapes.get(shape, 0) + 1
        return execute(sql, params, many, context)

    def record_copy(self, job_id: int, started: float, ended: float, outcome: str) -> None:
        self._this_process()
        with self.lock:
            self.copies.setdefault(str(job_id), []).append([started, ended, outcome,
                                                            self.command])  # fmt: skip

    def record_task(self, name: str, job_id, enqueued: float, started: float) -> None:
        self._this_process()
        with self.lock:
            self.task = name
            self.tasks.append([name, job_id, enqueued, started])

    def flush(self) -> None:
        with self.lock:
            figures = {"statements": dict(self.statements), "shapes": dict(self.shapes),
                       "connections": dict(self.connections), "tasks": list(self.tasks),
                       "copies": dict(self.copies)}  # fmt: skip
        path = self.folder / f"{self.command}-{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(figures))
        temporary.rename(path)

    def _flush_forever(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


def read_figures(folder: Path) -> dict:
    """The sum over every process of a scenario: {"statements": {step: n}, "shapes":
    {"step: VERB table": n}, "connections": {"step (thread)": n}, "copies": {job: [[start,
    end, outcome, command], ...]}, "tasks": [[func, job id, enqueued, started], ...]} (epoch s)."""
    sums: dict[str, dict[str, int]] = {"statements": {}, "shapes": {}, "connections": {}}
    copies: dict[str, list] = {}
    tasks: list[list] = []
    for path in folder.glob("*.json"):
        try:
            figures = json.loads(path.read_text())
        except ValueError:  # being replaced right now: the previous flush is gone, retry
            time.sleep(0.05)
            figures = json.loads(path.read_text())
        for kind, counts in sums.items():
            for key, count in figures[kind].items():
                counts[key] = counts.get(key, 0) + count
        for job_id, runs in figures["copies"].items():
            copies.setdefault(job_id, []).extend(runs)
        tasks.extend(figures["tasks"])
    return {**sums, "copies": copies, "tasks": tasks}


def _stamp_execution_start(sender, task: dict, func=None, **kwargs) -> None:
    # django-q2 saves `started` as the enqueue time; the worker-seconds need the moment the
    # worker begins the function, so the benchmark's cluster records that instead.
    from django.utils import timezone

    enqueued, task["started"] = task.get("started"), timezone.now()
    args = task.get("args") or (None,)
    FIGURES.record_task(getattr(func, "__name__", None) or str(task.get("func")), args[0],
                        enqueued.timestamp() if enqueued else None,
                        task["started"].timestamp())  # fmt: skip


def _task_ended(sender, **kwargs) -> None:
    FIGURES.task = None


def _timed(copy):
    def timed_copy(job, *args, **kwargs) -> str:
        outer, started, outcome = FIGURES.local.__dict__.get("step"), time.time(), "crashed"
        FIGURES.local.step = "copy"
        try:
            outcome = copy(job, *args, **kwargs)
            return outcome
        finally:
            FIGURES.record_copy(job.pk, started, time.time(), outcome)
            FIGURES.local.step = outer

    timed_copy.__name__ = copy.__name__
    return timed_copy


FIGURES: Figures


def main() -> None:
    global FIGURES
    command, *rest = sys.argv[1:]
    FIGURES = Figures(Path(os.environ["BENCH_FIGURES_DIR"]), command)
    import django

    django.setup()
    from django.core.management import execute_from_command_line
    from django.db.backends.signals import connection_created
    from django_q.signals import post_execute_in_worker, pre_execute

    import avatars.steps

    def install(sender, connection, **kwargs) -> None:
        FIGURES.count_connection()
        if FIGURES.count_statement not in connection.execute_wrappers:
            connection.execute_wrappers.append(FIGURES.count_statement)

    connection_created.connect(install, dispatch_uid="course-bench-statements", weak=False)
    # Every copy (in a check task, a copy task or the engine's threads) calls the module's
    # `steps.copy` by name: timed from the status call it may need to the item's save.
    avatars.steps.copy = _timed(avatars.steps.copy)
    pre_execute.connect(_stamp_execution_start, dispatch_uid="course-bench-started")
    post_execute_in_worker.connect(_task_ended, dispatch_uid="course-bench-ended")
    atexit.register(FIGURES.flush)
    if command == "gunicorn":
        from gunicorn.app.wsgiapp import run

        sys.argv = ["gunicorn", "contentstudio.wsgi", *rest]
        run()
    else:
        execute_from_command_line(["manage.py", command, *rest])


if __name__ == "__main__":
    main()
