"""Django admin: browse, search scripts, regenerate and delete after a confirmation page,
delete topics with their videos, the job queue, django-q for superusers only."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from avatars.models import VideoJob
from tests.builders import make_stored_item, make_topic
from tests.conftest import BUCKET
from topics.models import ContentItem, Topic

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/topics/contentitem/"
JOBS = "/admin/avatars/videojob/"


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


def staff(client, *perms: str) -> User:
    user = User.objects.create_user("staff", password="pw-12345-long", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_contentitem", *perms]))
    client.force_login(user)
    return user


def act(client, action: str, *items: ContentItem, confirm: bool = True, **extra):
    data = {"action": action, "_selected_action": [item.pk for item in items], **extra}
    if confirm:
        data["post"] = "yes"
    return client.post(CHANGELIST, data, follow=True)


def test_the_admin_is_titled_content_studio(client):
    staff(client)
    assert "Content Studio admin" in client.get("/admin/").content.decode()


def test_changelist_filters_and_search(client):
    staff(client)
    topic = make_topic("Photosynthesis")
    make_stored_item(topic, "avatar_videos/avatar_abc123_1.mp4", 10)
    ContentItem.objects.create(
        topic=make_topic("Legacy"), content_type="avatar_video",
        content_data={"videoUrl": "https://files2.heygen.ai/x.mp4", "videoId": "zzz",
                      "script": "Mitochondria are the powerhouse"},
    )  # fmt: skip
    assert "avatar_abc123_1.mp4" in client.get(f"{CHANGELIST}?stored=yes").content.decode()
    assert "avatar_abc123_1.mp4" not in client.get(f"{CHANGELIST}?stored=no").content.decode()
    assert client.get(f"{CHANGELIST}?fallback=yes&topic__language=en").status_code == 200
    found = client.get(f"{CHANGELIST}?q=avatar_abc123_1").content.decode()
    assert "Photosynthesis" in found and "Legacy)" not in found
    by_script = client.get(f"{CHANGELIST}?q=powerhouse").content.decode()
    assert "Legacy)" in by_script and "(Photosynthesis)" not in by_script
    assert "Avatar video #" in by_script  # readable labels


def test_change_page_previews_the_video_and_shows_metadata_read_only(client):
    staff(client)
    item = make_stored_item(make_topic(), "avatar_videos/avatar_pv_1.mp4", 4321)
    page = client.get(f"{CHANGELIST}{item.pk}/change/").content.decode()
    assert "<video" in page and f"/{BUCKET}/avatar_videos/avatar_pv_1.mp4" in page
    assert "4321" in page and 'name="content_data"' not in page


def test_change_page_does_not_embed_a_legacy_link_on_an_unknown_host(client):
    staff(client)
    item = ContentItem.objects.create(
        topic=make_topic(), content_type="avatar_video", status=ContentItem.Status.READY,
        content_data={"videoUrl": "https://evil.example.com/x.mp4", "script": "Old"},
    )  # fmt: skip
    page = client.get(f"{CHANGELIST}{item.pk}/change/").content.decode()
    assert "<video" not in page and "Not stored yet (legacy link" in page


def test_regenerate_needs_the_permission(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rg_1.mp4", 10)
    staff(client)
    page = client.get(CHANGELIST).content.decode()
    assert "regenerate_video" not in page and "delete_with_file" not in page
    response = act(client, "regenerate_video", item)
    assert not VideoJob.objects.exists()
    assert response.status_code == 200


def test_regenerate_asks_first_then_queues_one_job(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rg_2.mp4", 10)
    staff(client, "regenerate_contentitem")
    confirm = act(client, "regenerate_video", item, confirm=False).content.decode()
    assert "render credit" in confirm and 'name="post" value="yes"' in confirm
    assert not VideoJob.objects.exists()
    for _ in range(2):  # a second click joins the running job
        response = act(client, "regenerate_video", item)
    assert "Regeneration queued for 1 video(s)." in response.content.decode()
    assert VideoJob.objects.filter(content_item=item).count() == 1


def test_delete_with_file_asks_first_then_removes_row_and_object(client, s3_server, bucket_keys):
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_dl_1.mp4", Body=b"x")
    item = make_stored_item(make_topic(), "avatar_videos/avatar_dl_1.mp4", 1)
    staff(client, "delete_contentitem")
    confirm = act(client, "delete_with_file", item, confirm=False).content.decode()
    assert "1 stored file (the video)" in confirm and "cannot be undone" in confirm
    assert ContentItem.objects.exists() and bucket_keys() == ["avatar_videos/avatar_dl_1.mp4"]
    act(client, "delete_with_file", item)
    assert not ContentItem.objects.exists()
    assert bucket_keys() == []


def test_retry_storage_with_nothing_to_retry_warns(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rs_1.mp4", 1)
    staff(client, "regenerate_contentitem")
    page = act(client, "retry_storage", item).content.decode()
    assert "Nothing to retry for 1 item(s)" in page and "queued for 0" not in page
    assert 'class="warning"' in page


@pytest.mark.parametrize("language", ["hebrew please", "english!!"])
def test_topic_admin_refuses_a_malformed_language(client, language):
    staff(client, "add_topic", "change_topic", "view_topic")
    response = client.post("/admin/topics/topic/add/", {
        "title": "Cells", "language": language, "description": "",
        "content_items-TOTAL_FORMS": "0", "content_items-INITIAL_FORMS": "0",
    })  # fmt: skip
    assert response.status_code == 200 and "BCP 47" in response.content.decode()
    assert not Topic.objects.exists()


def test_a_topic_with_videos_is_deleted_with_its_files(client, s3_server, bucket_keys):
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_td_1.mp4", Body=b"x")
    topic = make_topic("Doomed")
    item = make_stored_item(topic, "avatar_videos/avatar_td_1.mp4", 1)
    VideoJob.objects.create(content_item=item, script="x", state="stored")
    staff(client, "view_topic", "delete_topic", "delete_contentitem")  # no job permission
    url = f"/admin/topics/topic/{topic.pk}/delete/"
    confirm = client.get(url).content.decode()
    assert "permission" not in confirm and "Yes, I’m sure" in confirm
    client.post(url, {"post": "yes"})
    assert not Topic.objects.exists() and not ContentItem.objects.exists()
    assert not VideoJob.objects.exists()
    assert bucket_keys() == []


def test_deleting_a_topic_with_videos_needs_the_item_permission(client):
    topic = make_topic("Kept")
    make_stored_item(topic, "avatar_videos/avatar_td_2.mp4", 1)
    staff(client, "view_topic", "delete_topic")
    page = client.get(f"/admin/topics/topic/{topic.pk}/delete/").content.decode()
    assert "permission to delete" in page and "content item" in page
    client.post(f"/admin/topics/topic/{topic.pk}/delete/", {"post": "yes"})
    assert Topic.objects.exists()


def test_django_q_tables_are_for_superusers_only(client):
    user = staff(client, "view_schedule", "view_success")
    assert "Django Q" not in client.get("/admin/").content.decode()
    assert client.get("/admin/django_q/schedule/").status_code == 403
    user.is_superuser = True
    user.save()
    assert client.get("/admin/django_q/schedule/").status_code == 200


def test_job_list_shows_the_queue(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_j_1.mp4", 1)
    VideoJob.objects.create(content_item=item, script="x", state="failed",
                            last_error="HeyGen said no")  # fmt: skip
    stalled_item = make_stored_item(make_topic("Other"), "avatar_videos/avatar_j_2.mp4", 1)
    VideoJob.objects.create(
        content_item=stalled_item, script="x", state="uploading", claimed_by="worker-7",
        lease_expires_at=timezone.now() - timedelta(minutes=1),
        state_changed_at=timezone.now() - timedelta(minutes=3),
    )  # fmt: skip
    user = staff(client)
    user.user_permissions.add(Permission.objects.get(codename="view_videojob"))
    page = client.get(JOBS).content.decode()
    assert "HeyGen said no" in page and "Failed: <strong>1</strong>" in page
    assert "Uploading: <strong>1</strong>" in page and "Stalled (lease expired): <strong>1" in page
    assert "worker-7" in page and "3 min" in page
    stalled = client.get(f"{JOBS}?stalled=yes").content.decode()
    assert "worker-7" in stalled and "HeyGen said no" not in stalled


def test_status_column_shows_the_one_derived_status(client):
    regenerating = make_stored_item(make_topic("Cells"), "avatar_videos/avatar_st_1.mp4", 1)
    VideoJob.objects.create(content_item=regenerating, script="x", state="rendering",
                            state_changed_at=timezone.now() - timedelta(minutes=2))  # fmt: skip
    ContentItem.objects.create(
        topic=make_topic("Legacy"), content_type="avatar_video", status="ready",
        content_data={"videoUrl": "https://evil.example.com/x.mp4", "script": "Old"},
    )  # fmt: skip
    staff(client)
    page = client.get(CHANGELIST).content.decode()
    assert "Regenerating: the current video stays until the new one is stored" in page
    assert "Not stored yet (legacy link)" in page
    rows = page.split('id="result_list"')[1].split("</table>")[0]
    assert "Rendering (2 min)" in rows and "Ready" not in rows  # not the stored status


def test_changelist_queries_do_not_grow_with_the_items(client):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(CHANGELIST).status_code == 200
        return len(captured)

    staff(client)
    topic = make_topic()

    def add_items(count: int) -> None:
        for _ in range(count):
            item = make_stored_item(topic, f"avatar_videos/avatar_q_{ContentItem.objects.count()}"
                                    ".mp4", 1)  # fmt: skip
            for state in ("stored", "queued"):
                VideoJob.objects.create(content_item=item, script="x", state=state)

    add_items(1)
    few = queries()
    add_items(6)
    assert queries() == few
    assert "Waiting for a render slot (position 7)" in client.get(CHANGELIST).content.decode()


def test_delete_topic_service_deletes_items_jobs_and_files_after_commit(s3_server, bucket_keys):
    from django.db import transaction

    from topics.services import topic_delete

    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_ds_1.mp4", Body=b"x")
    topic = make_topic("Doomed")
    item = make_stored_item(topic, "avatar_videos/avatar_ds_1.mp4", 1)
    VideoJob.objects.create(content_item=item, script="x", state="stored")
    with pytest.raises(RuntimeError), transaction.atomic():
        topic_delete(topic=topic)
        raise RuntimeError("rolled back")
    assert Topic.objects.exists() and bucket_keys() == ["avatar_videos/avatar_ds_1.mp4"]
    assert topic_delete(topic=Topic.objects.get()) == 1
    assert not Topic.objects.exists() and not ContentItem.objects.exists()
    assert not VideoJob.objects.exists() and bucket_keys() == []


def test_the_title_is_edited_in_the_change_form_through_the_rename_service(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_ti_1.mp4", 10)
    url = f"{CHANGELIST}{item.pk}/change/"
    staff(client)
    page = client.get(url).content.decode()
    assert 'name="title"' not in page and "Hello" in page  # view only: read, not edited
    assert client.post(url, {"title": "Stolen"}).status_code == 403
    staff_user = User.objects.get(username="staff")
    staff_user.user_permissions.add(Permission.objects.get(codename="change_contentitem"))
    page = client.get(url).content.decode()
    assert 'name="title"' in page and 'name="content_data"' not in page
    assert 'name="position"' not in page and 'name="storage_path"' not in page
    refused = client.post(url, {"title": "Two\nlines"})
    assert refused.status_code == 200 and "one line" in refused.content.decode()
    assert client.post(url, {"title": "  שיעור ראשון: מבוא "}).status_code == 302
    item.refresh_from_db()
    assert item.title == "שיעור ראשון: מבוא"
    assert (
        item.storage_path == "avatar_videos/avatar_ti_1.mp4" and item.content_data["fileSize"] == 10
    )


def test_the_list_shows_titles_newest_first_and_one_topics_lessons_in_order(client):
    from avatars import services as generation

    staff(client)
    topic = make_topic("Cells")
    jobs = generation.avatar_videos_generate(
        topic=topic, scripts=["Alpha one.", "Beta two.", "Gamma."]
    )
    make_stored_item(make_topic("Other"), "avatar_videos/avatar_ol_1.mp4", 1)

    def titles(url: str) -> list[str]:
        rows = client.get(url).content.decode().split('id="result_list"')[1].split("</table>")[0]
        found = [(rows.index(f">{t}<"), t) for t in ("Alpha one.", "Beta two.", "Gamma.", "Hello")
                 if f">{t}<" in rows]  # fmt: skip
        return [title for _, title in sorted(found)]

    assert titles(CHANGELIST) == ["Hello", "Gamma.", "Beta two.", "Alpha one."]
    assert titles(f"{CHANGELIST}?topic__id__exact={topic.pk}") == [
        "Alpha one.", "Beta two.", "Gamma."
    ]  # fmt: skip
    from topics.services import content_item_move

    content_item_move(content_item=jobs[2].content_item, direction="up")
    assert titles(f"{CHANGELIST}?topic__id__exact={topic.pk}") == [
        "Alpha one.", "Gamma.", "Beta two."
    ]  # fmt: skip
    user = User.objects.get(username="staff")
    user.user_permissions.add(Permission.objects.get(codename="view_topic"))
    topics = client.get("/admin/topics/topic/").content.decode()
    assert f'href="{CHANGELIST}?topic__id__exact={topic.pk}">3<' in topics
