"""Faults around the provider's create call, where one request could be paid twice: a create
slower than the lease, a process killed with SIGKILL while its create is in flight, a create
that times out (or whose answer is dropped) after the provider accepted it, and an engine on a
host whose clock runs 90 s ahead. Each checks, beside the world's columns, that the fake
provider created exactly one render per requested video.
"""

import random
import sys
import time

from django.test import override_settings

from avatars import services
from avatars.leases import db_now
from avatars.models import VideoJob
from benchmarks.chaos_faults import Fault, join, new_job, wait_for
from benchmarks.chaos_world import ENGINE_TICK, Process, World
from topics.models import Topic

State = VideoJob.State
#: A client timeout longer than the lease (2 s), so a create can outlive the lease.
LONG_TIMEOUT = {"HEYGEN_REQUEST_TIMEOUT_SECONDS": "4"}
SKEW_SECONDS = 90


def holder_pid(job_id: int) -> int:
    token = VideoJob.objects.filter(pk=job_id).values_list("claimed_by", flat=True).first()
    parts = (token or "").rsplit(":", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else 0


def in_flight(world: World, job_id: int):
    """The create reached the provider, and its answer is not recorded yet."""
    job = VideoJob.objects.filter(pk=job_id, state=State.RENDERING, provider_video_id="")
    return lambda: world.fake.stats["renders_created"] >= 1 and job.exists()


class SlowCreate:
    """The create takes 2.5-3.5 s: longer than the job lease (2 s), shorter than the client's
    timeout (4 s here). Either the provider accepts at once and answers late
    (`accept_then_sleep`), or the request is slow to arrive and the render is created just
    before the answer (`sleep_then_accept`). A `run_video_engine` (same timeout) sweeps every
    0.3 s meanwhile; in half the runs this process races it for the submission, in the others
    it joins once the engine's create is in flight. Nobody may take the job over or send it
    again while the call is in flight (a finding: two holders seen during the call)."""

    #: A create sent just before the job ended lands within this long (counted in its run).
    calls_linger_seconds = 3.6

    def setup(self, world: World) -> None:
        self.engine = world.start("run_video_engine", "--tick", str(ENGINE_TICK),
                                  env=LONG_TIMEOUT)  # fmt: skip

    def teardown(self, world: World) -> None:
        self.engine.stop()

    def __call__(self, world: World, rng: random.Random) -> list[int]:
        fault = rng.choice(["accept_then_sleep", "sleep_then_accept"])
        world.fake.set_fault(fault, rng.uniform(2.5, 3.5))
        with override_settings(HEYGEN_REQUEST_TIMEOUT_SECONDS=4):
            job = new_job(world)
            engine_first = rng.random() < 0.5  # else this run races the engine for the claim
            threads = [] if engine_first else world.drive([job.pk])
            sending = VideoJob.objects.filter(pk=job.pk, state=State.RENDERING,
                                              provider_video_id="")  # fmt: skip
            if wait_for(sending.exists, 30, 0.01):
                by_engine = holder_pid(job.pk) in self.engine.group_pids()
                world.notes.append(f"{fault}, create sent by "
                                   f"{'the engine' if by_engine else 'this run'}")  # fmt: skip
                self._watch_the_call(world, job.pk, sending)
            join(threads + (world.drive([job.pk]) if engine_first else []))
        return [job.pk]

    @staticmethod
    def _watch_the_call(world: World, job_id: int, sending) -> None:
        """Every holder of the job until the create's answer is recorded (one, if the
        submission's lease outlives the call)."""
        holders, started = [], time.monotonic()
        while time.monotonic() - started < 15:
            row = sending.values_list("claimed_by", "lease_expires_at", "state").first()
            if row is None:
                break
            if row[0] and (not holders or holders[-1][0] != row[0]):
                left = (row[1] - db_now()).total_seconds() if row[1] else 0.0
                holders.append((row[0], round(time.monotonic() - started, 1), round(left, 1)))
            time.sleep(0.02)
        if len(holders) > 1:
            world.findings.append(
                f"job {job_id} taken over while its create was in flight: (holder, seconds "
                f"after the send, lease left) {holders}"
            )


class KillDuringCreate:
    """Two `qcluster` groups and two engines (as production runs them when a sweep must go
    on while one engine restarts); the create is held open 3 s by the provider (client
    timeout 4 s) and the process group that sent it is SIGKILLed while it is in flight, then
    started again. The job's submission lease outlives the longest call (the client's
    deadline, 60 s, plus a margin): only then is the title looked up and adopted, by the
    other engine's next sweep."""

    settle_seconds = 150

    def setup(self, world: World) -> None:
        self.processes = {
            **{
                name: world.start("run_video_engine", "--tick", str(ENGINE_TICK), env=LONG_TIMEOUT)
                for name in ("engine 1", "engine 2")
            },  # fmt: skip
            "worker 1": world.start("qcluster", env=LONG_TIMEOUT),
            "worker 2": world.start("qcluster", env=LONG_TIMEOUT),
        }

    def teardown(self, world: World) -> None:
        for process in self.processes.values():
            process.stop()

    def __call__(self, world: World, rng: random.Random) -> list[int]:
        world.fake.set_fault("accept_then_sleep", 3)
        job = new_job(world, enqueue=True)
        if not wait_for(in_flight(world, job.pk), 60, 0.01):
            world.findings.append(f"job {job.pk}: no create in flight within 60 s")
            return [job.pk]
        pid = holder_pid(job.pk)
        name = next((n for n, p in self.processes.items() if pid in p.group_pids()), "")
        if not name:
            world.findings.append(f"job {job.pk}: create sent by an unknown process {pid}")
            return [job.pk]
        killed = world.kill(self.processes[name])
        world.fake.faults.pop("accept_then_sleep", None)
        world.notes.append(f"killed the {name} mid-create, holding jobs {killed}")
        engine = name.startswith("engine")
        command = "run_video_engine" if engine else "qcluster"
        extra = ("--tick", str(ENGINE_TICK)) if engine else ()
        self.processes[name] = world.start(command, *extra, env=LONG_TIMEOUT)
        return [job.pk]


def create_timeout(world: World, rng: random.Random) -> list[int]:
    """The provider accepts the create, then answers after the client's 1 s timeout (1.5 to
    3 s) or closes the connection without answering: the job must find the render by its
    title (after VIDEO_SUBMIT_LOOKUP_DELAY_SECONDS, 2 s) and adopt it."""
    if rng.random() < 0.5:
        delay = rng.uniform(1.5, 3.0)
        world.fake.set_fault("accept_then_sleep", delay)
        world.notes.append(f"answer after {delay:.1f} s")
    else:
        world.fake.set_fault("accept_then_drop", 1)
        world.notes.append("connection dropped")
    job = new_job(world)
    join(world.drive([job.pk]))
    adopted = VideoJob.objects.filter(pk=job.pk, last_error="").exists()
    world.notes.append("stored" if adopted else "ended with an error")
    return [job.pk]


class ClockAhead:
    """Two engines, one on a host whose clock runs 90 s ahead (`python -m
    benchmarks.skewed_engine 90 run_video_engine`), and one `qcluster`; three videos whose
    creates take 0.5 s and whose copies take about 2 s, so leases are live while the skewed
    engine sweeps. Nothing fails and nobody dies here: a job that needed a second attempt
    (a takeover, a retry) is a finding."""

    def setup(self, world: World) -> None:
        skewed = (sys.executable, "-m", "benchmarks.skewed_engine", str(SKEW_SECONDS))
        self.processes: list[Process] = [
            world.start("run_video_engine", "--tick", str(ENGINE_TICK)),
            world.start("run_video_engine", "--tick", str(ENGINE_TICK), program=skewed),
            world.start("qcluster"),
        ]

    def teardown(self, world: World) -> None:
        for process in self.processes:
            process.stop()

    def __call__(self, world: World, rng: random.Random) -> list[int]:
        world.fake.set_fault("accept_then_sleep", 0.5)
        world.fake.set_fault("serve_file", str(world.medium_video))
        world.fake.set_fault("slow_download", 2.0)
        topic = Topic.objects.create(title="Chaos", language="en")
        jobs = services.avatar_video_request_batch(
            topic=topic, scripts=[f"Part {n}: light and leaves." for n in range(3)]
        )
        ids = [job.pk for job in jobs]
        active = VideoJob.objects.filter(pk__in=ids, state__in=VideoJob.ACTIVE_STATES)
        wait_for(lambda: not active.exists(), 60, 0.1)
        retried = list(
            VideoJob.objects.filter(pk__in=ids, attempts__gt=0).values_list(
                "pk", "attempts", "state", "last_error"
            )
        )
        if retried:  # nothing failed and nobody died: no job should need a second attempt
            world.findings.append(f"jobs retried with no fault but the clock (job, attempts, "
                                  f"state, last error): {retried}")  # fmt: skip
        return ids


FAULTS = [
    Fault("create slower than the lease", SlowCreate()),
    Fault("kill -9 during the create call", KillDuringCreate()),
    Fault("create timing out after the provider accepted it", create_timeout),
    Fault("one engine's clock 90 s ahead", ClockAhead()),
]
