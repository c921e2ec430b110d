"""Faults of the job workers and their broker: the Redis broker's server stopped while videos
are requested and generated, and a storm of SIGKILLs to random `qcluster` processes.
"""

import random
import socket
import time
from html.parser import HTMLParser
from unittest import mock

from django.db import connection
from django.test import Client
from django_q.conf import Conf

from avatars.models import VideoJob
from benchmarks.chaos_faults import Fault, _post, _signed_event, new_job, wait_for
from benchmarks.chaos_world import ENGINE_TICK, Process, World
from topics.models import Topic

REDIS_PORT = 6390  # a private server, started and stopped by the fault
STORM_SECONDS, QUICK_STORM_SECONDS = 60, 15


def _redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", REDIS_PORT), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class _ConfirmForm(HTMLParser):
    """The preview page's Confirm form: its inputs' names and values."""

    def __init__(self) -> None:
        super().__init__()
        self.inside, self.fields = False, {}

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.inside = (attributes.get("action") or "").endswith("/videos/confirm/")
        elif tag == "input" and self.inside and attributes.get("name"):
            self.fields[attributes["name"]] = attributes.get("value") or ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def _confirm_fields(page: str) -> dict:
    form = _ConfirmForm()
    form.feed(page)
    return form.fields


class RedisDown:
    """`qcluster` and the engine on django-q2's Redis broker (a private `redis-server`). Each
    run stops the server, then posts two scripts to the studio's generate view (this process
    on the same broker): the answer must be the "queued" redirect, not a 500, and the jobs
    must stand. Half the runs
    start the server again 1-4 s later; in the others it stays down until the run ends, and
    the engine's sweep alone completes the videos."""

    settle_seconds = 120

    def setup(self, world: World) -> None:
        self.url = f"redis://127.0.0.1:{REDIS_PORT}/0"
        self.redis = self._start_redis(world)
        env = {"Q_BROKER_URL": self.url}
        self.processes = [
            world.start("run_video_engine", "--tick", str(ENGINE_TICK), env=env),
            world.start("qcluster", env=env),
        ]

    def teardown(self, world: World) -> None:
        for process in [*self.processes, self.redis]:
            process.stop()

    @staticmethod
    def _start_redis(world: World) -> Process:
        server = world.start("--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", program=("redis-server",))  # fmt: skip
        if not wait_for(_redis_answers, 10, 0.05):
            raise RuntimeError(f"redis-server did not start on port {REDIS_PORT}")
        return server

    def _stop_redis(self, world: World) -> None:
        self.redis.stop()
        world.processes.remove(self.redis)

    def _generate(self, world: World, topic: Topic):
        """The studio's generate view, its wake-ups sent to the (stopped) Redis broker."""
        with mock.patch.object(Conf, "ORM", None), mock.patch.object(Conf, "REDIS", self.url):
            try:
                client = Client(raise_request_exception=False)
                client.force_login(world.user)
                # The preview (nothing is queued yet), then its Confirm: that POST itself (302
                # to the topic page when queued), not the page after it.
                preview = client.post(f"/topics/{topic.pk}/videos/",
                                      data={"script": "One: roots.\n\nTwo: leaves.",
                                            "language": "en"})  # fmt: skip
                if preview.status_code != 200:
                    return preview
                fields = _confirm_fields(preview.content.decode())
                return client.post(f"/topics/{topic.pk}/videos/confirm/", fields)
            finally:
                connection.close()

    def __call__(self, world: World, rng: random.Random) -> list[int]:
        if not self.redis.alive:
            self.redis = self._start_redis(world)
        self._stop_redis(world)
        topic = Topic.objects.create(title="Chaos", language="en")
        response = self._generate(world, topic)
        ids = list(VideoJob.objects.filter(content_item__topic=topic).values_list("pk", flat=True))
        world.notes.append(f"generate answered {response.status_code}; {len(ids)} jobs")
        if response.status_code != 302 or len(ids) != 2:
            world.findings.append(f"generate with the broker down: {response.status_code}, "
                                  f"{len(ids)} jobs")  # fmt: skip
        if rng.random() < 0.5:
            time.sleep(rng.uniform(1.0, 4.0))
            self.redis = self._start_redis(world)
            world.notes.append("broker back")
        else:
            world.notes.append("broker down to the end")
        return ids


class WorkerStorm:
    """Two `qcluster` groups (2 workers each) and the engine; for 60 s (15 s with --quick)
    a video is requested every 1-2.5 s and every 1-3 s a random process of a random cluster
    is SIGKILLed (its job's holder when it holds one, six times in ten), or, one time in five,
    the whole cluster (then started again; a cluster still starting is not killed). Then the
    run settles; each job a kill left is timed from the kill to its next progress."""

    settle_seconds = 150

    def setup(self, world: World) -> None:
        self.engine = world.start("run_video_engine", "--tick", str(ENGINE_TICK))
        self.clusters = [world.start("qcluster", env={"Q_WORKERS": "2"}) for _ in range(2)]

    def teardown(self, world: World) -> None:
        for process in [self.engine, *self.clusters]:
            process.stop()

    def _holders(self, pids: set[int]) -> list[int]:
        tokens = VideoJob.objects.filter(state__in=VideoJob.ACTIVE_STATES).exclude(claimed_by="")
        held = {int(parts[1]) for token in tokens.values_list("claimed_by", flat=True)
                if len(parts := token.rsplit(":", 2)) == 3 and parts[1].isdigit()}  # fmt: skip
        return sorted(pids & held)

    def _restart_exited(self, world: World, counts: dict) -> None:
        """A supervisor's part: a `qcluster` whose main process exited (it does when its
        sentinel is killed) has its leftover workers killed with its process group, and is
        started again."""
        for cluster in [c for c in self.clusters if not c.alive]:
            counts["held"] += len(world.kill(cluster))
            counts["exited"] += 1
            self.clusters.remove(cluster)
            self.clusters.append(world.start("qcluster", env={"Q_WORKERS": "2"}))

    def _kill_one(self, world: World, rng: random.Random, counts: dict) -> None:
        """A cluster still starting (no workers forked yet) is left alone: killing it again
        and again would only measure Django's start-up."""
        self._restart_exited(world, counts)
        started = [(c, c.group_pids() - {c.process.pid}) for c in self.clusters if c.alive]
        started = [(cluster, pids) for cluster, pids in started if pids]
        if not started:
            counts["skipped"] += 1
            return
        cluster, pids = rng.choice(started)
        if rng.random() < 0.2:
            counts["held"] += len(world.kill(cluster))
            counts["clusters"] += 1
            self.clusters.remove(cluster)
            self.clusters.append(world.start("qcluster", env={"Q_WORKERS": "2"}))
            return
        holders = self._holders(pids)
        pid = rng.choice(holders) if holders and rng.random() < 0.6 else rng.choice(sorted(pids))
        counts["held"] += len(world.kill_pid(pid))
        counts["processes"] += 1

    def __call__(self, world: World, rng: random.Random) -> list[int]:
        world.fake.render_seconds = 1.0
        world.fake.set_fault("serve_file", str(world.medium_video))
        world.fake.set_fault("slow_download", 2.0)
        now = time.monotonic()
        end = now + (QUICK_STORM_SECONDS if world.quick else STORM_SECONDS)
        next_request, next_kill = now, now + rng.uniform(1.0, 3.0)
        counts, ids = {"processes": 0, "clusters": 0, "exited": 0, "held": 0, "skipped": 0,
                       "webhooks": 0}, []  # fmt: skip
        relayed: set[int] = set()
        while (now := time.monotonic()) < end:
            if now >= next_request:
                ids.append(new_job(world, enqueue=True).pk)
                next_request = now + rng.uniform(1.0, 2.5)
            if now >= next_kill:
                self._kill_one(world, rng, counts)
                next_kill = now + rng.uniform(1.0, 3.0)
            counts["webhooks"] += self._relay_webhooks(world, relayed)
            time.sleep(0.05)
        self._restart_exited(world, counts)  # the settling is timed with supervised clusters
        world.notes.append(
            f"{len(ids)} videos; killed {counts['processes']} processes and "
            f"{counts['clusters']} clusters, holding {counts['held']} jobs; restarted "
            f"{counts['exited']} clusters whose sentinel died (no cluster started: "
            f"{counts['skipped']} times); {counts['webhooks']} webhooks"
        )
        return ids

    @staticmethod
    def _relay_webhooks(world: World, relayed: set[int]) -> int:
        """HeyGen's success event for each render the fake finished, posted to the real
        webhook view (validly signed) as the fake would: the check and its copy then run as a
        task on a job worker, which the storm's kills hit (the engine's sweep copies on its
        own threads the renders it finds done first)."""
        rendering = VideoJob.objects.filter(state=VideoJob.State.RENDERING).exclude(
            provider_video_id="").exclude(pk__in=relayed)  # fmt: skip
        posted = 0
        for job in rendering:
            if world.fake.videos.get(job.provider_video_id, {}).get("status") != "completed":
                continue
            body, signature = _signed_event(job, world.fake.video_url(job.provider_video_id))
            _post("/webhooks/heygen/", body=body, headers={"X-HeyGen-Signature": signature})
            relayed.add(job.pk)
            posted += 1
        return posted


FAULTS = [
    Fault("Redis down while generating", RedisDown()),
    Fault("storm of worker kill -9s", WorkerStorm()),
]
