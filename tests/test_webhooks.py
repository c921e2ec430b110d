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


def make_job(state=VideoJob.State.RENDERING) -> VideoJob:
    topic = make_topic()
    item = ContentItem.objects.create(topic=topic, content_type="avatar_video")
    return VideoJob.objects.create(
        content_item=item,
        script="Hi",
        state=state,
        provider_video_id="vid123",
        next_check_at=timezone.now() + timedelta(minutes=5),
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
def test_event_for_a_job_past_its_render_changes_nothing(client):
    job = make_job(state=VideoJob.State.UPLOADING)
    response = post(client, event(job))
    assert response.json() == {"status": "in-progress"}
    assert OrmQ.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_event_for_a_rendering_job_checks_it_at_once_and_only_once(client):
    job = make_job()
    assert post(client, event(job)).json() == {"status": "checking"}
    job.refresh_from_db()
    assert job.next_check_at <= timezone.now()  # due now, for the poller too
    assert OrmQ.objects.count() == 1  # one wake-up for the check step
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


def post_raw(client, body: bytes):
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return client.post(
        URL, data=body, content_type="application/json", HTTP_X_HEYGEN_SIGNATURE=signature
    )


SUCCESS = "avatar_video.success"
CALLBACK = "7d3f1c9e-2b4a-4c1e-9f00-0123456789ab"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b'"avatar_video.success"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b"null", id="null"),
        pytest.param(b"{}", id="no-event-type"),
        pytest.param(b'{"event_type": 7, "event_data": {}}', id="event-type-number"),
        pytest.param(b'{"event_type": ["avatar_video.success"]}', id="event-type-list"),
        pytest.param(b'{"event_type": {"a": 1}}', id="event-type-object"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": []}).encode(),
                     id="event-data-list"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": "x"}).encode(),
                     id="event-data-string"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": 3}).encode(),
                     id="event-data-number"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": {"video_id": 12345,
                     "callback_id": CALLBACK}}).encode(), id="video-id-number"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": {"video_id": ["v"],
                     "callback_id": CALLBACK}}).encode(), id="video-id-list"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": {"video_id": "v",
                     "callback_id": {"id": CALLBACK}}}).encode(), id="callback-id-object"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": {"video_id": "v" * 129,
                     "callback_id": CALLBACK}}).encode(), id="video-id-too-long"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": {"video_id": "v",
                     "callback_id": "c" * 129}}).encode(), id="callback-id-too-long"),
        pytest.param(json.dumps({"event_type": SUCCESS, "event_data": {"video_id": "v\x00",
                     "callback_id": CALLBACK}}).encode(), id="video-id-nul"),
        pytest.param(b'{"event_type": "avatar_video.success", "event_data": {"video_id": '
                     b'"\\ud800", "callback_id": "x"}}', id="video-id-lone-surrogate"),
        pytest.param(b'{"event_type": "avatar_video.success\xff\xfe"}', id="invalid-utf8"),
        pytest.param("{\"event_type\": \"avatar_video.success\"}".encode("utf-16"), id="utf16"),
        pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
        pytest.param(b"", id="empty"),
    ],
)  # fmt: skip
def test_malformed_but_signed_bodies_answer_400_never_500(client, body):
    response = post_raw(client, body)
    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed event")
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_ids_of_exactly_128_characters_are_accepted(client):
    payload = {
        "event_type": SUCCESS,
        "event_data": {"video_id": "v" * 128, "callback_id": "c" * 128},
    }
    response = post_raw(client, json.dumps(payload).encode())
    assert response.status_code == 200 and response.json() == {"status": "unknown"}
    assert WebhookEvent.objects.get().provider_video_id == "v" * 128


@pytest.mark.django_db
def test_a_missing_or_null_event_data_is_an_empty_event(client):
    for body in (b'{"event_type": "avatar_video.fail"}',
                 b'{"event_type": "avatar_video.fail", "event_data": null}'):  # fmt: skip
        response = post_raw(client, body)
        assert response.status_code == 200 and response.json() == {"status": "unknown"}


@pytest.mark.django_db
def test_unhandled_event_types_are_ignored_whatever_their_ids(client):
    payload = {"event_type": "avatar_video_gif.success", "event_data": {"video_id": 5}}
    assert post_raw(client, json.dumps(payload).encode()).json() == {"status": "ignored"}
    assert not WebhookEvent.objects.exists()


@pytest.mark.django_db
def test_a_malformed_body_with_a_bad_signature_is_still_401(client):
    response = client.post(URL, data=b"[]", content_type="application/json",
                           HTTP_X_HEYGEN_SIGNATURE="0" * 64)  # fmt: skip
    assert response.status_code == 401
