"""Studio pages: login, topics, the generate form, progress, the player, no leaks."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from avatars.models import VideoJob
from tests.builders import make_stored_item, make_topic
from tests.conftest import BUCKET
from tests.servers import supabase_storage_settings
from topics.models import ContentItem

pytestmark = pytest.mark.django_db


@pytest.fixture
def author(client):
    user = User.objects.create_user("author", password="pw-12345-long")
    client.force_login(user)
    return user


def test_pages_need_a_login(client):
    topic = make_topic()
    assert client.get("/").status_code == 302
    assert client.get(f"/topics/{topic.pk}/").status_code == 302


def test_topic_list_search_and_paging(client, author):
    for n in range(30):
        make_topic(f"Topic {n:02d}")
    make_topic("Mitochondria")
    page = client.get("/").content.decode()
    assert "Page 1 of 2" in page
    found = client.get("/?q=mito").content.decode()
    assert "Mitochondria" in found and "Topic 01" not in found


def test_topic_page_plays_stored_fallback_and_legacy_videos(client, author):
    topic = make_topic()
    make_stored_item(topic, "avatar_videos/avatar_s_1.mp4", 1234)
    fallback = {
        "videoUrl": "https://files2.heygen.ai/fb.mp4",
        "metadata": {"storage_fallback": True},
    }
    ContentItem.objects.create(
        topic=topic, content_type="avatar_video", status=ContentItem.Status.NEEDS_STORAGE,
        content_data=fallback,
    )  # fmt: skip
    ContentItem.objects.create(
        topic=topic, content_type="avatar_video", status=ContentItem.Status.READY,
        content_data={"videoUrl": "https://files2.heygen.ai/legacy.mp4", "script": "Old"},
    )  # fmt: skip
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert (
        f"https://test-project.supabase.co/storage/v1/object/public/{BUCKET}/"
        "avatar_videos/avatar_s_1.mp4" in page
    )
    assert "https://files2.heygen.ai/fb.mp4" in page and "Not yet in our storage" in page
    assert "https://files2.heygen.ai/legacy.mp4" in page and "legacy provider URL" in page
    assert "1.2\xa0KB" in page


def test_private_bucket_pages_show_only_signed_urls(client, author, settings, s3_server):
    for key, value in supabase_storage_settings(s3_server, BUCKET, public=False).items():
        setattr(settings, key, value)
    topic = make_topic()
    make_stored_item(topic, "avatar_videos/avatar_p_1.mp4", 10)
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert "X-Amz-Signature=" in page
    assert "/storage/v1/object/public/" not in page


def test_generate_form_shows_errors_next_to_fields(client, author, settings):
    settings.AVATAR_SCRIPT_MAX_CHARS = 10
    topic = make_topic()
    response = client.post(f"/topics/{topic.pk}/videos/", {"script": "x" * 11, "language": "e n"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="error-script"' in page and "the limit is 10" in page
    assert 'id="error-language"' in page
    assert not VideoJob.objects.exists()


def test_generate_form_queues_a_job_and_progress_is_json(client, author, settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    topic = make_topic()
    response = client.post(
        f"/topics/{topic.pk}/videos/", {"script": "Hello class", "language": "en"}
    )
    assert response.status_code == 302
    job = VideoJob.objects.get()
    assert job.state == "queued" and job.content_item.status == "generating"
    progress = client.get(f"/avatars/jobs/{job.pk}/progress").json()
    assert progress == {"id": job.pk, "state": "queued", "state_label": "Queued",
                        "is_terminal": False, "attempts": 0, "last_error": "",
                        "item_id": job.content_item_id}  # fmt: skip
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert f'data-job-id="{job.pk}"' in page and 'data-job-terminal="0"' in page


def test_right_to_left_topics_render_rtl(client, author):
    topic = make_topic("פוטוסינתזה", language="he")
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert 'dir="rtl"' in page and 'lang="he"' in page


def test_no_api_key_or_storage_secret_in_pages(client, author, settings):
    settings.HEYGEN_API_KEY = "SENTINEL-HEYGEN-KEY"
    topic = make_topic()
    make_stored_item(topic, "avatar_videos/avatar_k_1.mp4", 10)
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert "SENTINEL-HEYGEN-KEY" not in page
    assert "test-secret-access-key" not in page


def test_topic_page_queries_do_not_grow_with_items(client, author):
    topic = make_topic()

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(f"/topics/{topic.pk}/").status_code == 200
        return len(queries)

    make_stored_item(topic, "avatar_videos/avatar_q_0.mp4", 1)
    few = count()
    for n in range(1, 30):
        make_stored_item(topic, f"avatar_videos/avatar_q_{n}.mp4", 1)
    assert count() == few
