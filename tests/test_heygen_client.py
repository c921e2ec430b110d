"""The HeyGen client speaks the documented API: shapes, auth header, envelopes, errors."""

import json
from datetime import UTC, datetime

import pytest
import responses
from django.utils import timezone
from django_q.models import Schedule

from avatars.errors import AuthenticationFailed, InvalidRequest, ProviderUnavailable
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
        "title": "T", "callback_id": "cb-1", "caption": False, "test": False,
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
def test_a_retryable_failure_schedules_a_retry_with_backoff(fake_heygen, settings):
    from avatars.jobs import request_avatar_video, run_video_job
    from tests.builders import make_topic

    settings.VIDEO_JOB_RETRY_BASE_SECONDS = 30
    fake_heygen.set_fault("generate_500", 100)
    job = request_avatar_video(topic=make_topic(), script="Hi", enqueue=False, max_attempts=3)
    started = timezone.now()
    assert run_video_job(job.pk) == "queued"
    job.refresh_from_db()
    assert job.attempts == 1 and "HTTP 500" in job.last_error
    schedule = Schedule.objects.get(func="avatars.jobs.run_video_job")
    assert schedule.schedule_type == Schedule.ONCE and schedule.args == f"{job.pk},"
    assert schedule.next_run == job.next_attempt_at
    assert (job.next_attempt_at - started).total_seconds() >= 30
