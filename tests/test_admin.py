"""Django admin: browse with filters and search, regenerate and delete with permissions."""

import pytest
from django.contrib.auth.models import Permission, User

from avatars.models import VideoJob
from tests.builders import make_stored_item, make_topic
from tests.conftest import BUCKET
from topics.models import ContentItem

pytestmark = pytest.mark.django_db(transaction=True)
CHANGELIST = "/admin/topics/contentitem/"


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


def staff(client, *perms: str) -> User:
    user = User.objects.create_user("staff", password="pw-12345-long", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_contentitem", *perms]))
    client.force_login(user)
    return user


def test_changelist_filters_and_search(client):
    staff(client)
    topic = make_topic("Photosynthesis")
    make_stored_item(topic, "avatar_videos/avatar_abc123_1.mp4", 10)
    ContentItem.objects.create(
        topic=make_topic("Legacy"), content_type="avatar_video",
        content_data={"videoUrl": "https://files2.heygen.ai/x.mp4", "videoId": "zzz"},
    )  # fmt: skip
    assert "avatar_abc123_1.mp4" in client.get(f"{CHANGELIST}?stored=yes").content.decode()
    assert "avatar_abc123_1.mp4" not in client.get(f"{CHANGELIST}?stored=no").content.decode()
    assert client.get(f"{CHANGELIST}?fallback=yes&topic__language=en").status_code == 200
    found = client.get(f"{CHANGELIST}?q=avatar_abc123_1").content.decode()
    assert "Photosynthesis" in found and "Legacy" not in found
    assert "Photosynthesis" in client.get(f"{CHANGELIST}?q=photo").content.decode()


def test_change_page_previews_the_video_and_shows_metadata_read_only(client):
    staff(client)
    item = make_stored_item(make_topic(), "avatar_videos/avatar_pv_1.mp4", 4321)
    page = client.get(f"{CHANGELIST}{item.pk}/change/").content.decode()
    assert "<video" in page and f"/{BUCKET}/avatar_videos/avatar_pv_1.mp4" in page
    assert "4321" in page and 'name="content_data"' not in page


def test_regenerate_needs_the_permission(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rg_1.mp4", 10)
    staff(client)
    page = client.get(CHANGELIST).content.decode()
    assert "regenerate_video" not in page and "delete_with_file" not in page
    response = client.post(
        CHANGELIST, {"action": "regenerate_video", "_selected_action": [item.pk]}, follow=True
    )
    assert not VideoJob.objects.exists()
    assert response.status_code == 200


def test_regenerate_action_queues_one_job(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_rg_2.mp4", 10)
    staff(client, "regenerate_contentitem")
    for _ in range(2):  # a second click joins the running job
        response = client.post(
            CHANGELIST, {"action": "regenerate_video", "_selected_action": [item.pk]}, follow=True
        )
    assert "Regeneration queued for 1 video(s)." in response.content.decode()
    assert VideoJob.objects.filter(content_item=item).count() == 1


def test_delete_with_file_removes_row_and_object(client, s3_server, bucket_keys):
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_dl_1.mp4", Body=b"x")
    item = make_stored_item(make_topic(), "avatar_videos/avatar_dl_1.mp4", 1)
    staff(client, "delete_contentitem")
    client.post(CHANGELIST, {"action": "delete_with_file", "_selected_action": [item.pk]})
    assert not ContentItem.objects.exists()
    assert bucket_keys() == []


def test_jobs_are_visible_with_state_and_error(client):
    item = make_stored_item(make_topic(), "avatar_videos/avatar_j_1.mp4", 1)
    VideoJob.objects.create(
        content_item=item, script="x", state="failed", last_error="HeyGen said no"
    )
    user = staff(client)
    user.user_permissions.add(Permission.objects.get(codename="view_videojob"))
    page = client.get("/admin/avatars/videojob/").content.decode()
    assert "HeyGen said no" in page and "Failed" in page
