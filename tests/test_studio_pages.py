"""Studio pages: login, topics, the generate form (one or many scripts), progress, the player,
regenerate and delete with confirmation, legacy links, no leaks."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from avatars.models import VideoJob
from tests.builders import generate_through_preview, log_in_author, make_stored_item, make_topic
from tests.conftest import BUCKET
from tests.servers import supabase_storage_settings
from topics.models import ContentItem, Topic

pytestmark = pytest.mark.django_db

AUTHOR_PERMISSIONS = [
    "view_topic", "add_topic", "change_topic", "view_contentitem", "add_contentitem",
    "regenerate_contentitem", "delete_contentitem",
]  # fmt: skip


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


@pytest.fixture
def author(client):
    return log_in_author(client, AUTHOR_PERMISSIONS)


def test_pages_need_a_login(client):
    topic = make_topic()
    assert client.get("/").status_code == 302
    assert client.get(f"/topics/{topic.pk}/").status_code == 302


def test_topic_list_search_and_paging(client, author):
    for n in range(30):
        make_topic(f"Topic {n:02d}")
    make_topic("Mitochondria")
    page = client.get("/").content.decode()
    assert "Page 1 of 2" in page and "New topic" in page
    found = client.get("/?q=mito").content.decode()
    assert "Mitochondria" in found and "Topic 01" not in found


def test_create_and_edit_a_topic(client, author):
    response = client.post(
        "/topics/new/", {"title": " Cells ", "language": "pt-BR", "description": "Basics"}
    )
    topic = Topic.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/topics/{topic.pk}/"
    assert (topic.title, topic.language) == ("Cells", "pt-BR")
    client.post(f"/topics/{topic.pk}/edit/", {"title": "Cells 2", "language": "he"})
    topic.refresh_from_db()
    assert (topic.title, topic.language, topic.description) == ("Cells 2", "he", "")


@pytest.mark.parametrize("language", ["hebrew please", "english!!", ""])
def test_topic_form_refuses_a_malformed_language(client, author, language):
    response = client.post("/topics/new/", {"title": "Cells", "language": language})
    assert response.status_code == 400
    assert 'id="error-language"' in response.content.decode()
    assert not Topic.objects.exists()


def test_topic_page_lists_stored_fallback_and_legacy_videos(client, author):
    topic = make_topic()
    make_stored_item(topic, "avatar_videos/avatar_s_1.mp4", 1234)
    ContentItem.objects.create(
        topic=topic, content_type="avatar_video", status=ContentItem.Status.NEEDS_STORAGE,
        content_data={"videoUrl": "https://files2.heygen.ai/fb.mp4",
                      "metadata": {"storage_fallback": True}},
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
    assert "https://files2.heygen.ai/fb.mp4" in page and "Waiting for storage" in page
    assert "https://files2.heygen.ai/legacy.mp4" in page and "Not stored yet (legacy link)" in page
    assert "backfill_avatar_videos" in page
    assert "1.2\xa0KB" in page and "avatar_s_1.mp4" in page
    assert page.count("Download") == 3 and page.count("Copy link") == 3
    # The generate form comes first, folded away once the topic has videos.
    assert page.index("Generate avatar videos") < page.index("avatar_s_1.mp4")
    assert '<details class="card generate" id="generate">' in page


def test_legacy_link_on_a_host_outside_the_allow_list_is_not_embedded(client, author):
    topic = make_topic()
    ContentItem.objects.create(
        topic=topic, content_type="avatar_video", status=ContentItem.Status.READY,
        content_data={"videoUrl": "https://evil.example.com/x.mp4", "script": "Old"},
    )  # fmt: skip
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert "evil.example.com" not in page and "<video" not in page
    assert "Not stored yet (legacy link)" in page and "AVATAR_DOWNLOAD_ALLOWED_HOSTS" in page


def test_offline_videos_are_labelled_as_previews(client, author):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_off_1.mp4", 10)
    VideoJob.objects.create(content_item=item, script="x", state="stored", provider="local")
    page = client.get(f"/topics/{item.topic_id}/").content.decode()
    assert "Preview (offline renderer)" in page


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


def test_reloading_the_form_address_goes_back_to_the_topic(client, author):
    topic = make_topic()
    response = client.get(f"/topics/{topic.pk}/videos/")
    assert response.status_code == 302 and response["Location"] == f"/topics/{topic.pk}/"


def test_generate_form_queues_a_job_and_progress_is_json(client, author):
    topic = make_topic()
    response = generate_through_preview(client, topic, {"script": "Hello class", "language": "en"})
    assert response.status_code == 302
    job = VideoJob.objects.get()
    assert job.state == "queued" and job.content_item.status == "generating"
    progress = client.get(f"/avatars/jobs/{job.pk}/progress").json()
    assert progress["id"] == job.pk and progress["item_id"] == job.content_item_id
    assert progress["state"] == "queued" and progress["is_terminal"] is False
    assert progress["queue_position"] == 1
    assert progress["status"]["label"] == "Waiting for a render slot (position 1)"
    assert [step["state"] for step in progress["steps"]] == ["current", "todo", "todo", "todo"]
    many = client.get(f"/avatars/jobs/progress?id={job.pk}&id=999").json()
    assert [entry["id"] for entry in many["jobs"]] == [job.pk]
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert f'data-job-id="{job.pk}"' in page and 'data-active="1"' in page
    assert "studio/progress.js" in page


def test_progress_during_the_copy_gives_bytes_and_percentage(client, author):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_cp_1.mp4", 10)
    job = VideoJob.objects.create(content_item=item, script="x", state="uploading",
                                  bytes_total=4_000_000, bytes_copied=1_800_000)  # fmt: skip
    progress = client.get(f"/avatars/jobs/{job.pk}/progress").json()
    assert (progress["bytes_copied"], progress["bytes_total"], progress["percent"]) == (
        1_800_000,
        4_000_000,
        45,
    )
    assert progress["status"]["label"].startswith("Regenerating: the current video stays")
    assert progress["status"]["step"] == "Copying to storage (45%)"
    assert [s["state"] for s in progress["steps"]] == ["done", "done", "current", "todo"]


def test_several_scripts_make_one_video_each(client, author):
    topic = make_topic()
    scripts = "First lesson.\n\nSecond lesson,\non two lines.\n \nThird."
    response = generate_through_preview(client, topic, {"script": scripts, "language": "en"})
    assert response.status_code == 302
    jobs = VideoJob.objects.order_by("pk")
    assert [job.script for job in jobs] == ["First lesson.", "Second lesson,\non two lines.",
                                            "Third."]  # fmt: skip
    assert len({job.content_item_id for job in jobs}) == 3


def test_a_scripts_file_makes_one_video_per_row(client, author):
    topic = make_topic()
    upload = SimpleUploadedFile("lessons.csv", b'script\nOne\n"Two, with a comma"\n')
    response = generate_through_preview(client, topic, {"scripts_file": upload, "language": "en"})
    assert response.status_code == 302
    assert sorted(VideoJob.objects.values_list("script", flat=True)) == ["One", "Two, with a comma"]


def test_a_scripts_file_of_another_type_is_refused(client, author):
    topic = make_topic()
    upload = SimpleUploadedFile("lessons.pdf", b"%PDF")
    response = client.post(
        f"/topics/{topic.pk}/videos/", {"scripts_file": upload, "language": "en"}
    )
    assert response.status_code == 400 and 'id="error-scripts_file"' in response.content.decode()
    assert not VideoJob.objects.exists()


def test_regenerate_asks_first_then_queues_one_job(client, author):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rg_1.mp4", 10)
    url = f"/topics/{item.topic_id}/videos/{item.pk}/regenerate/"
    confirm = client.get(url).content.decode()
    assert "render credit" in confirm and not VideoJob.objects.exists()
    for _ in range(2):  # a second click joins the running job
        assert client.post(url).status_code == 302
    assert VideoJob.objects.filter(content_item=item).count() == 1
    page = client.get(f"/topics/{item.topic_id}/").content.decode()
    assert "Regenerating: the current video stays until the new one is stored" in page
    assert "avatar_rg_1.mp4" in page  # still playing


def test_delete_asks_first_then_removes_row_and_object_after_commit(
    client, author, s3_server, bucket_keys, django_capture_on_commit_callbacks
):
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_dl_1.mp4", Body=b"x")
    item = make_stored_item(make_topic(), "avatar_videos/avatar_dl_1.mp4", 1)
    url = f"/topics/{item.topic_id}/videos/{item.pk}/delete/"
    confirm = client.get(url).content.decode()
    assert "is deleted from storage (1 file)" in confirm  # a thumbnail slot, not the path
    assert "avatar_videos/avatar_dl_1.mp4" not in confirm
    assert bucket_keys() == ["avatar_videos/avatar_dl_1.mp4"]
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url).status_code == 302
    assert not ContentItem.objects.exists()
    assert bucket_keys() == []


def test_a_finished_jobs_card_is_served_for_the_in_place_swap(client, author):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_c_1.mp4", 10)
    VideoJob.objects.create(content_item=item, script="x", state="stored")
    card = client.get(f"/topics/{item.topic_id}/videos/{item.pk}/card/").content.decode()
    assert card.lstrip().startswith("<article") and "video-status stored" in card
    assert 'data-action="play"' in card and 'data-active="0"' in card
    assert "<video" not in card  # the player opens on demand


def test_right_to_left_topics_render_rtl(client, author):
    topic = make_topic("פוטוסינתזה", language="he")
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert 'dir="rtl"' in page and 'lang="he"' in page


def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("studio/favicon.svg")


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
