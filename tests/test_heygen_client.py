"""The HeyGen client speaks the documented API: shapes, auth header, envelopes, errors."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import responses
from django.utils import timezone

from avatars.errors import (
    AuthenticationFailed,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    QuotaExceeded,
    RenderSlotsBusy,
)
from avatars.providers import heygen as heygen_module
from avatars.providers.base import RenderRequest
from avatars.providers.heygen import HeyGenClient

BASE = "https://api.heygen.test"


def client() -> HeyGenClient:
    return HeyGenClient(api_key="k-123", api_base=BASE, timeout=2, deadline=5, backoff_factor=0)


@responses.activate
def test_create_video_sends_the_documented_body_and_header():
    responses.post(f"{BASE}/v2/video/generate", json={"error": None, "data": {"video_id": "v1"}})
    request = RenderRequest(script="Hello", language="en", avatar_id="a1", voice_id="vo1",
                            title="T", callback_id="cb-1", width=1280, height=720)  # fmt: skip
    assert client().create_video(request) == "v1"
    sent = responses.calls[0].request
    assert sent.headers["X-Api-Key"] == "k-123"
    assert json.loads(sent.body) == {
        "video_inputs": [{
            "character": {"type": "avatar", "avatar_id": "a1", "avatar_style": "normal"},
            "voice": {"type": "text", "voice_id": "vo1", "input_text": "Hello", "speed": 1.0},
            "background": {"type": "color", "value": "#FFFFFF"},
        }],
        "dimension": {"width": 1280, "height": 720},
        "title": "T", "callback_id": "cb-1", "caption": True, "test": False,
    }  # fmt: skip


@responses.activate
def test_http_200_without_a_video_id_is_not_success():
    responses.post(f"{BASE}/v2/video/generate", json={"error": None, "data": {}})
    with pytest.raises(ProviderUnavailable):
        client().create_video(RenderRequest("x", "en", "a", "v"))


@responses.activate
def test_status_uses_the_v1_envelope_and_reads_the_url_expiry():
    url = "https://files2.heygen.ai/aws_pacific/avatar_tmp/v1.mp4?Expires=1900000000&Signature=s"
    responses.get(f"{BASE}/v1/video_status.get", json={
        "code": 100, "message": "Success",
        "data": {"id": "v1", "status": "completed", "video_url": url, "duration": 12.3,
                 "callback_id": "cb-1", "error": None},
    })  # fmt: skip
    status = client().get_status("v1")
    assert responses.calls[0].request.url.endswith("/v1/video_status.get?video_id=v1")
    assert status.is_completed and status.duration_seconds == 12.3
    assert status.url_expires_at == datetime.fromtimestamp(1900000000, tz=UTC)


@responses.activate
def test_failed_status_carries_heygens_message():
    error = {"code": 40119, "message": "Video is too long", "detail": "Plan limit"}
    data = {"id": "v1", "status": "failed", "error": error}
    responses.get(f"{BASE}/v1/video_status.get", json={"code": 100, "data": data})
    status = client().get_status("v1")
    assert status.status == "failed" and status.error_message == "Video is too long Plan limit"


@responses.activate
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (401, {"error": {"code": "unauthorized", "message": "bad"}}, AuthenticationFailed),
        (400, {"error": {"code": "invalid_parameter", "message": "bad dim"}}, InvalidRequest),
        (503, "<html>down</html>", ProviderUnavailable),
    ],
)
def test_errors_are_typed_and_never_show_the_key(status, body, error):
    kwargs = {"json": body} if isinstance(body, dict) else {"body": body}
    responses.post(f"{BASE}/v2/video/generate", status=status, **kwargs)
    with pytest.raises(error) as raised:
        client().create_video(RenderRequest("x", "en", "a", "v"))
    assert "k-123" not in str(raised.value)


@pytest.mark.django_db(transaction=True)
def test_a_retryable_failure_waits_in_the_queue_with_backoff(fake_heygen, settings):
    from avatars.jobs import submit_queued_jobs
    from avatars.services import avatar_video_request
    from tests.builders import make_topic

    settings.VIDEO_JOB_RETRY_BASE_SECONDS = 30
    fake_heygen.set_fault("generate_500", 100)
    job = avatar_video_request(
        topic=make_topic(), script="Hi", enqueue_submit=False, max_attempts=3
    )
    started = timezone.now()
    submit_queued_jobs()
    job.refresh_from_db()
    assert job.state == "queued" and job.claimed_by == ""
    assert job.attempts == 1 and "HTTP 500" in job.last_error
    assert (job.next_attempt_at - started).total_seconds() >= 30
    assert submit_queued_jobs() == 0  # not due yet: it waits as a row, not in a worker


# --- Over real HTTP: the fake HeyGen, and small local servers ------------------------------


class ScriptedServer:
    """A loopback HTTP server answering each request with the next scripted (status, headers,
    body); it records the method, path and headers of everything it received."""

    def __init__(self, answers: list[tuple[int, dict, bytes]] | None = None):
        self.answers = list(answers or [])
        self.seen: list[tuple[str, str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                return

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server.seen.append((self.command, self.path, dict(self.headers)))
                status, headers, body = (
                    server.answers.pop(0) if len(server.answers) > 1 else server.answers[0]
                )
                self.send_response(status)
                for name, value in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    servers: list[ScriptedServer] = []

    def start(answers) -> ScriptedServer:
        servers.append(ScriptedServer(answers))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def fake_client(fake_heygen, **kwargs) -> HeyGenClient:
    return HeyGenClient(api_base=fake_heygen.base_url, timeout=5, backoff_factor=0, **kwargs)


def posts_seen(fake_heygen) -> int:
    return fake_heygen.requests_seen.count("POST /v2/video/generate")


def test_busy_render_slots_answer_429_once_and_are_not_waited_out(fake_heygen):
    fake_heygen.max_concurrent = 1
    heygen = fake_client(fake_heygen)
    heygen.create_video(RenderRequest("first", "en", "a", "v"))
    started = time.monotonic()
    with pytest.raises(RenderSlotsBusy) as raised:
        heygen.create_video(RenderRequest("second", "en", "a", "v"))
    assert time.monotonic() - started < 1  # no Retry-After sleep inside the worker
    assert posts_seen(fake_heygen) == 2 and fake_heygen.stats["concurrency_429"] == 1
    assert raised.value.retryable and raised.value.retry_after == 1.0
    assert "concurrent_limit" in str(raised.value) and fake_heygen.api_key not in str(raised.value)


@pytest.mark.parametrize("fault", ["sleep_then_accept", "accept_then_sleep"])
def test_a_create_still_sleeping_when_the_fake_is_reset_leaves_the_next_test_alone(
    fake_heygen, fault
):
    """A slow create from a test that ended (its client gave up) neither records a render
    nor takes a fault the next test set (it once took the next test's accept_then_drop)."""
    fake_heygen.set_fault(fault, 0.6)
    dropped = fake_heygen.stale_requests
    heygen = HeyGenClient(api_base=fake_heygen.base_url, timeout=0.2, deadline=0.3,
                          backoff_factor=0)  # fmt: skip
    with pytest.raises(ProviderError):
        heygen.create_video(RenderRequest("slow", "en", "a", "v"))
    fake_heygen.reset()  # the next test begins while the create still sleeps
    fake_heygen.set_fault("accept_then_drop", 1)
    created = fake_heygen.stats["renders_created"]
    deadline = time.monotonic() + 10
    while fake_heygen.stale_requests == dropped and time.monotonic() < deadline:
        time.sleep(0.05)  # until the old create wakes up and is dropped
    assert fake_heygen.stale_requests == dropped + 1
    assert fake_heygen.faults == {"accept_then_drop": 1}
    assert fake_heygen.stats["renders_created"] == created and not fake_heygen.videos


def test_a_rate_limited_create_is_render_slots_busy_not_a_quota(fake_heygen):
    fake_heygen.set_fault("generate_429", 3)
    with pytest.raises(RenderSlotsBusy, match="rate_limited"):
        fake_client(fake_heygen).create_video(RenderRequest("x", "en", "a", "v"))
    assert posts_seen(fake_heygen) == 1
    assert fake_heygen.faults["generate_429"] == 2


def test_the_trial_quota_429_stays_quota_exceeded(fake_heygen):
    fake_heygen.set_fault("quota")
    with pytest.raises(QuotaExceeded, match="trial limit"):
        fake_client(fake_heygen).create_video(RenderRequest("x", "en", "a", "v"))
    assert posts_seen(fake_heygen) == 1


def test_create_still_retries_a_5xx_and_status_reads_retry_429(fake_heygen, scripted_server):
    fake_heygen.set_fault("generate_500", 2)
    heygen = fake_client(fake_heygen)
    video_id = heygen.create_video(RenderRequest("x", "en", "a", "v"))
    assert posts_seen(fake_heygen) == 3
    fake_heygen.set_fault("status_500", 2)
    assert heygen.get_status(video_id).provider_video_id == video_id

    ok = {"code": 100, "data": {"id": "v1", "status": "processing"}}
    server = scripted_server([
        (429, {"Retry-After": "0"}, b'{"error": {"code": "rate_limited"}}'),
        (200, {"Content-Type": "application/json"}, json.dumps(ok).encode()),
    ])  # fmt: skip
    status = HeyGenClient(api_key="k", api_base=server.base_url, backoff_factor=0).get_status("v1")
    assert status.status == "processing" and len(server.seen) == 2


def test_each_call_keeps_its_own_deadline_on_the_shared_session(scripted_server):
    server = scripted_server([(503, {"Retry-After": "30"}, b"down")])
    heygen = HeyGenClient(api_key="k", api_base=server.base_url, timeout=2, deadline=1)
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="HTTP 503"):
            heygen.get_status("v1")
        assert time.monotonic() - started < 3  # not the 30 s Retry-After, not 4 retries of it


@pytest.mark.parametrize("call", ["create", "status"])
def test_api_calls_never_follow_a_redirect_so_the_key_stays_home(scripted_server, call):
    elsewhere = scripted_server([(200, {"Content-Type": "application/json"}, b"{}")])
    location = f"{elsewhere.base_url}/v2/video/generate?token=abc"
    api = scripted_server([(302, {"Location": location}, b"")])
    heygen = HeyGenClient(api_key="k-secret-123", api_base=api.base_url, backoff_factor=0)
    with pytest.raises(ProviderError, match="redirect \\(HTTP 302\\)") as raised:
        if call == "create":
            heygen.create_video(RenderRequest("x", "en", "a", "v"))
        else:
            heygen.get_status("v1")
    assert type(raised.value) is ProviderError and not raised.value.retryable
    assert "k-secret-123" not in str(raised.value) and "token" not in str(raised.value)
    assert len(api.seen) == 1 and api.seen[0][2]["X-Api-Key"] == "k-secret-123"
    assert elsewhere.seen == []  # nothing, let alone the key, reached the other host


def test_one_session_per_process_reuses_its_connection_across_clients(fake_heygen):
    first, second = fake_client(fake_heygen), fake_client(fake_heygen)
    assert first.session is second.session is heygen_module._shared_session()
    video_id = first.create_video(RenderRequest("x", "en", "a", "v"))
    pools = first.session.get_adapter(fake_heygen.base_url).poolmanager.pools
    port = int(fake_heygen.host_port.split(":")[1])
    (pool,) = [pools[key] for key in pools.keys() if key.key_port == port]
    connections, requests_sent = pool.num_connections, pool.num_requests
    second.get_status(video_id)
    first.get_status(video_id)
    assert pool.num_requests == requests_sent + 2
    assert pool.num_connections == connections  # no new connection: the open one was reused


def test_concurrent_calls_from_threads_share_the_session_safely(fake_heygen):
    heygen = fake_client(fake_heygen)
    with ThreadPoolExecutor(max_workers=8) as pool:
        requests = [RenderRequest(f"s{n % 2}", "en", "a", "v") for n in range(16)]
        ids = list(pool.map(heygen.create_video, requests))
        statuses = list(pool.map(heygen.get_status, ids))
    assert len(set(ids)) == 16 and [s.provider_video_id for s in statuses] == ids


def test_a_forked_worker_gets_its_own_session(monkeypatch):
    parent = heygen_module._shared_session()
    monkeypatch.setattr(heygen_module.os, "getpid", lambda: -1)
    child = heygen_module._shared_session()
    assert child is not parent and heygen_module._shared_session() is child
