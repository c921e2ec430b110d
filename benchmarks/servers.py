"""Loopback servers and a big MP4 for the benchmarks."""

import os
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from tests.servers import S3Server, free_port, stop_process_group, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "media"
MiB = 1024 * 1024


def big_mp4(size_mib: int) -> Path:
    """A real small MP4 padded with a top-level `free` box to `size_mib` MiB (made locally)."""
    from avatars.providers.offline import render_script_video

    folder = Path(tempfile.gettempdir()) / "contentstudio-bench"
    folder.mkdir(exist_ok=True)
    path = folder / f"video-{size_mib}MiB.mp4"
    if path.exists() and path.stat().st_size == size_mib * MiB:
        return path
    small = render_script_video("Benchmark lesson", folder / "small.mp4", width=320, height=180,
                                seconds=2)  # fmt: skip
    head = small.read_bytes()
    padding = size_mib * MiB - len(head) - 16
    with path.open("wb") as out:
        out.write(head)
        out.write(struct.pack(">I4sQ", 1, b"free", padding + 16))
        block = b"\0" * MiB
        remaining = padding
        while remaining:
            step = min(remaining, len(block))
            out.write(block[:step])
            remaining -= step
    return path


class FakeHeyGenProcess:
    """The project's fake HeyGen in its own process (so it costs the measured one nothing)."""

    API_KEY = "fake-heygen-key"

    def __init__(self, render_seconds: float = 0, max_concurrent: int = 0):
        self.port = free_port()
        command = ["manage.py", "fake_heygen", "--port", str(self.port)]
        if render_seconds or max_concurrent:
            command += ["--render-seconds", str(render_seconds),
                        "--max-concurrent", str(max_concurrent)]  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, *command],
            cwd=ROOT, env=bench_env({}), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port)

    @property
    def host_port(self) -> str:
        return f"127.0.0.1:{self.port}"

    def reset(self) -> None:
        """Forget videos, faults, stats and the webhook (rendered files stay cached)."""
        requests.post(f"{self.base_url}/_fake/reset", timeout=10).raise_for_status()

    def configure(self, *, render_seconds: float, max_concurrent: int = 0) -> None:
        """Wall-clock renders of `render_seconds`; `max_concurrent` renders at once (0: any)."""
        requests.post(f"{self.base_url}/_fake/config", timeout=10,
                      json={"render_seconds": render_seconds,
                            "max_concurrent": max_concurrent}).raise_for_status()  # fmt: skip

    def stats(self) -> dict:
        """The fake's own counts: renders_created, max_in_progress, downloads, concurrency_429."""
        response = requests.get(f"{self.base_url}/_fake/stats", timeout=10)
        response.raise_for_status()
        return response.json()

    def renders(self) -> list[dict]:
        """Each render since the last reset: id, created_at (epoch seconds), render_seconds,
        status_calls (`GET /v1/video_status.get` for it), status."""
        response = requests.get(f"{self.base_url}/_fake/renders", timeout=30)
        response.raise_for_status()
        return response.json()["renders"]

    def register_webhook(self, url: str) -> str:
        """Register `url` as the webhook endpoint, as with HeyGen; returns its signing secret."""
        response = requests.post(
            f"{self.base_url}/v1/webhook/endpoint.add",
            json={"url": url},
            headers={"X-Api-Key": self.API_KEY},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["data"]["secret"]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rendered_url(self, serve_file: Path) -> str:
        """Create a video, poll it to completion, return its signed download URL."""
        requests.post(f"{self.base_url}/_fake/faults", json={"serve_file": str(serve_file)},
                      timeout=10).raise_for_status()  # fmt: skip
        headers = {"X-Api-Key": "fake-heygen-key"}
        body = {"video_inputs": [{"character": {"type": "avatar", "avatar_id": "a"},
                                  "voice": {"type": "text", "voice_id": "v",
                                            "input_text": "Benchmark lesson"}}]}  # fmt: skip
        created = requests.post(
            f"{self.base_url}/v2/video/generate", json=body, headers=headers, timeout=30
        )
        video_id = created.json()["data"]["video_id"]
        for _ in range(20):
            data = requests.get(f"{self.base_url}/v1/video_status.get",
                                params={"video_id": video_id}, headers=headers,
                                timeout=30).json()["data"]  # fmt: skip
            if data["status"] == "completed":
                return data["video_url"]
        raise RuntimeError("fake render never completed")

    def prerender(self, scripts: list[str]) -> None:
        """Have the fake render these scripts' MP4s and thumbnails now (ffmpeg; it keeps them
        across resets), so that measured renders cost wall-clock time only, as at HeyGen."""
        headers = {"X-Api-Key": self.API_KEY}
        for script in scripts:
            body = {"video_inputs": [{"character": {"type": "avatar", "avatar_id": "a"},
                                      "voice": {"type": "text", "voice_id": "v",
                                                "input_text": script}}]}  # fmt: skip
            created = requests.post(f"{self.base_url}/v2/video/generate", json=body,
                                    headers=headers, timeout=30)  # fmt: skip
            created.raise_for_status()
            video_id = created.json()["data"]["video_id"]
            for _ in range(20):
                data = requests.get(f"{self.base_url}/v1/video_status.get",
                                    params={"video_id": video_id}, headers=headers,
                                    timeout=60).json()["data"]  # fmt: skip
                if data["status"] == "completed":
                    if data.get("thumbnail_url"):  # made once, as the MP4
                        requests.get(data["thumbnail_url"], timeout=60).raise_for_status()
                    break
            else:
                raise RuntimeError("fake render never completed")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class ProcessGroup:
    """`python <argv>` (e.g. `manage.py qcluster`) in its own process group, as a separate
    machine would be, so that stopping it reaches every child (qcluster forks its workers);
    output goes to `log`."""

    def __init__(self, *argv: str, env: dict, log: Path):
        self.argv = argv
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, *argv], cwd=ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15) -> None:
        stop_process_group(self.process, timeout)


class RedisServer:
    """A private `redis-server` on its own port, keeping nothing on disk, for the Redis-broker
    scenarios (never the shared one on 6379)."""

    def __init__(self, port: int = 6391, log: Path | None = None):
        self.port = port
        with (log or Path(os.devnull)).open("ab") as out:
            self.process = subprocess.Popen(
                ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                 "--daemonize", "no", "--bind", "127.0.0.1"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        wait_for_port(port)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_s3() -> S3Server:
    server = S3Server().start()
    server.create_bucket(BUCKET)
    return server


def bench_env(extra: dict, s3: S3Server | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "HEYGEN_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "contentstudio.settings",
        "DJANGO_SECRET_KEY": "benchmark-secret-key-0123456789-0123456789-0123456789",
        "DATABASE_URL": env.get("BENCH_DATABASE_URL")
        or f"sqlite:///{tempfile.gettempdir()}/cs-bench.sqlite3",
        "AVATAR_VIDEO_MAX_BYTES": str(4 * 1024 * MiB),
        "LOG_LEVEL": "WARNING",
        "DJANGO_ALLOWED_HOSTS": "testserver",
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "DJANGO_DEV_TOOLS": "1",
    })  # fmt: skip
    if s3 is not None:
        env.update({
            "SUPABASE_URL": "https://bench.supabase.co",
            "SUPABASE_S3_ENDPOINT": s3.endpoint,
            "SUPABASE_S3_ACCESS_KEY_ID": "bench-key",
            "SUPABASE_S3_SECRET_ACCESS_KEY": "bench-secret",
            "SUPABASE_STORAGE_BUCKET": BUCKET,
        })  # fmt: skip
    env.update(extra)
    return env
