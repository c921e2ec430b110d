"""HeyGen webhook endpoint: verified, idempotent, never trusted beyond a wake-up."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import OrmQ

from avatars.models import VideoJob, WebhookEvent
from tests.builders import make_topic
from topics.models import ContentItem

SECRET = "whsec_test_secret"
URL = "/webhooks/heygen/"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.HEYGEN_WEBHOOK_SECRET = SECRET
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


def post(client, payload: dict, secret: str = SECRET):
    body = json.dumps(payload).encode()
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        URL, data=body, content_type="application/json", HTTP_X_HEYGEN_SIGNATURE=signature
    )


def make_job(state=VideoJob.State.RENDERING, heartbeat_age=0) -> VideoJob:
    topic = make_topic()
    item = ContentItem.objects.create(topic=topic, content_type="avatar_video")
    return VideoJob.objects.create(
        content_item=item,
        script="Hi",
        state=state,
        provider_video_id="vid123",
        heartbeat_at=timezone.now() - timedelta(seconds=heartbeat_age),
    )


def event(job: VideoJob, event_type="avatar_video.success") -> dict:
    return {
        "event_type": event_type,
        "event_data": {
            "video_id": job.provider_video_id,
            "url": "https://evil.example.com/x.mp4",
            "callback_id": str(job.callback_id),
        },
    }


def test_options_probe_answers_fast(client):
    assert client.options(URL).status_code == 200


@pytest.mark.django_db
def test_bad_signature_is_refused(client):
    job = make_job()
    response = post(client, event(job), secret="wrong")
    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_event_for_a_live_job_changes_nothing(client):
    job = make_job()
    response = post(client, event(job))
    assert response.json() == {"status": "in-progress"}
    assert OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_event_for_a_stalled_job_resumes_it_once(client, settings):
    job = make_job(heartbeat_age=settings.VIDEO_JOB_STALL_SECONDS + 60)
    assert post(client, event(job)).json() == {"status": "resumed"}
    assert OrmQ.objects.count() == 1
    # The same delivery again (a retry or a replay) is a no-op.
    assert post(client, event(job)).json() == {"status": "duplicate"}
    assert OrmQ.objects.count() == 1


@pytest.mark.django_db
def test_late_event_for_a_finished_job_changes_nothing(client):
    job = make_job(state=VideoJob.State.STORED)
    assert post(client, event(job, "avatar_video.fail")).json() == {"status": "already-finished"}
    job.refresh_from_db()
    assert job.state == VideoJob.State.STORED


@pytest.mark.django_db
def test_unknown_and_malformed_events(client):
    assert post(client, {"event_type": "avatar_video_gif.success", "event_data": {}}).json() == {
        "status": "ignored"
    }
    payload = {"event_type": "avatar_video.success", "event_data": {"callback_id": "nope"}}
    assert post(client, payload).json() == {"status": "unknown"}
    body = b"not json"
    sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    response = client.post(URL, data=body, content_type="application/json",
                           HTTP_X_HEYGEN_SIGNATURE=sig)  # fmt: skip
    assert response.status_code == 400


@pytest.mark.django_db
def test_webhooks_off_without_a_secret(client, settings):
    settings.HEYGEN_WEBHOOK_SECRET = ""
    assert post(client, {"event_type": "avatar_video.success"}).status_code == 503
