"""Real servers on loopback for tests and benchmarks: moto's standalone S3 server."""

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from contentstudio.storage import (
    new_boto3_session,
    register_supabase_handlers,
    supabase_client_config,
)

TEST_REGION = "us-east-1"
TEST_ACCESS_KEY = "test-access-key-id"
TEST_SECRET_KEY = "test-secret-access-key-do-not-log"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    """Until something listens on `port`; with `process`, as long as it lives (a start-up
    on a busy machine may take long, a crash ends the wait at once) up to `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for port {port} exited ({process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def stop_process_group(process: subprocess.Popen, timeout: float = 15) -> None:
    """Stop a process started in a group of its own (`start_new_session`): SIGTERM to its main
    process only, as a supervisor that stops qcluster cleanly does (systemd's KillMode=mixed;
    its sentinel stops its workers and it exits within a second), then SIGKILL to whatever of
    the group is left once it exits or after `timeout`. A SIGTERM to the whole group kills
    qcluster's workers under its sentinel, which then waits for them until it is killed
    (README, "Liveness")."""
    if process.poll() is None:
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):  # then SIGKILL below
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):  # children that outlived their parent
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


#: `python -m moto.server` with moto's module list read once (see the script).
MOTO_SERVER = Path(__file__).with_name("moto_server.py")


@dataclass
class S3Server:
    """moto's S3 server in its own process, so stopping it is a real outage."""

    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    _client: object = field(default=None, repr=False)
    #: The server's write count when each bucket was last emptied (`empty_bucket_if_written`).
    _emptied_at: dict = field(default_factory=dict, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        self.process = subprocess.Popen(
            [sys.executable, str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # moto imports for seconds of CPU: on a shared machine, far longer.
        wait_for_port(self.port, timeout=180, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def client(self):
        """The test's own S3 client (made once: a client costs tens of ms of CPU, and every
        test empties the bucket through it)."""
        if self._client is not None:
            return self._client
        client = new_boto3_session().client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=TEST_REGION,
            aws_access_key_id=TEST_ACCESS_KEY,
            aws_secret_access_key=TEST_SECRET_KEY,
            config=supabase_client_config(connect_timeout=10, read_timeout=60),
        )
        # As the production backend does: DeleteObjects sends a Content-Type (Supabase's
        # server refuses the batch without one) and namespaced errors keep their codes.
        register_supabase_handlers(client.meta.events)
        self._client = client
        return client

    def create_bucket(self, bucket: str, public: bool = True) -> None:
        client = self.client()
        client.create_bucket(Bucket=bucket)
        if public:  # mimic a Supabase public bucket: anonymous GET allowed
            policy = {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": "s3:GetObject",
                        "Resource": f"arn:aws:s3:::{bucket}/*",
                    }
                ],
            }
            client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            obj["Key"]
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]

    def empty_bucket(self, bucket: str) -> int:
        """Delete every object and unfinished multipart upload; the requests it sent that
        count as writes (tests/moto_server.py)."""
        client = self.client()
        keys = self.keys(bucket)
        sent = 0
        for start in range(0, len(keys), 1000):
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            client.delete_objects(Bucket=bucket, Delete={"Objects": batch})
            sent += 1
        # Unfinished multipart uploads too: a test that cut a transfer leaves one behind.
        for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
            sent += 1
        return sent

    def writes(self) -> tuple[int, int]:
        """(server pid, requests that may have changed a bucket so far): a restarted server
        is another pid."""
        answer = requests.get(f"{self.endpoint}/__writes__", timeout=10)
        answer.raise_for_status()
        pid, count = answer.text.split(":")
        return int(pid), int(count)

    def empty_bucket_if_written(self, bucket: str) -> None:
        """`empty_bucket` unless no request that may write reached the server since this
        bucket was last emptied. A write that lands while it empties (a straggler of the
        test) is not counted as the emptying's own, so the next call empties again."""
        pid, before = self.writes()
        if self._emptied_at.get(bucket) == (pid, before):
            return
        self._emptied_at[bucket] = (pid, before + self.empty_bucket(bucket))

    def reset(self) -> None:
        requests.post(f"{self.endpoint}/moto-api/reset", timeout=10).raise_for_status()


def supabase_storage_settings(server: S3Server, bucket: str, public: bool = True) -> dict:
    """The settings that point the production Supabase backend at `server`."""
    return {
        # Loopback answers in milliseconds: a cut link or a dead server fails a call in
        # seconds, not after production's 60 s read timeout.
        "SUPABASE_S3_CONNECT_TIMEOUT_SECONDS": 2,
        "SUPABASE_S3_READ_TIMEOUT_SECONDS": 15,
        "SUPABASE_URL": "https://test-project.supabase.co",
        "SUPABASE_STORAGE_BUCKET": bucket,
        "SUPABASE_BUCKET_PUBLIC": public,
        "SUPABASE_STORAGE_ENABLED": True,
        "STORAGES": {
            "default": {
                "BACKEND": "contentstudio.storage.SupabaseStorage",
                "OPTIONS": {
                    "bucket_name": bucket,
                    "endpoint_url": server.endpoint,
                    "region_name": TEST_REGION,
                    "access_key": TEST_ACCESS_KEY,
                    "secret_key": TEST_SECRET_KEY,
                    "supabase_url": "https://test-project.supabase.co",
                    "public_bucket": public,
                },
            },
            "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        },
    }


_REQUEST_LINE = re.compile(rb"(GET|HEAD|PUT|POST|DELETE) (\S+) HTTP/1\.[01]\r\n")


class TcpProxy:
    """A loopback TCP relay whose link can be cut: storage "goes down" but keeps its objects."""

    def __init__(self, target_port: int):
        import threading

        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.cuts = 0  # how many times the link was cut: a connection lives within one
        #: Requests matching this (bytes regex on what the client sends) are dropped.
        self.refused = None
        self.refusals = 0
        #: Each request's method and target, in the order the relay saw them.
        self.requests: list[tuple[str, str]] = []
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if not self.up:  # cut while this one was being connected: it never opens
                    client.close()
                    upstream.close()
                    continue
                self._open.update({client, upstream})
                cuts = self.cuts
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst, cuts), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, cuts: int) -> None:
        """Relay until either side closes or the link is cut (checked between reads, so no
        connection outlives a cut, whatever the order of events)."""
        with contextlib.suppress(OSError, ValueError):  # ValueError: closed by the other side
            while self.cuts == cuts:
                if not select.select([src], [], [], 0.1)[0]:
                    continue
                if not (chunk := src.recv(65536)) or self._drops(chunk):
                    break
                if request := _REQUEST_LINE.match(chunk):
                    self.requests.append((request[1].decode(), request[2].decode()))
                dst.sendall(chunk)
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.close()

    def _drops(self, chunk: bytes) -> bool:
        """Whether these bytes end their connection instead of being relayed."""
        if self.refused is not None and self.refused.search(chunk):
            self.refusals += 1
            return True  # the request never reaches storage: its connection drops
        return False

    def refuse(self, pattern: bytes | None) -> None:
        """Drop every request whose bytes match `pattern` (e.g. rb"PUT /[^ ]*\\.jpg"): that
        upload fails as a broken connection would, the rest of storage works."""
        import re

        self.refused = re.compile(pattern) if pattern else None

    def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        with self._lock:
            self.up = False
            self.cuts += 1
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                    sock.close()
            self._open.clear()

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self.cut()
        self.listener.close()
