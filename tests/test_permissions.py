"""Every studio write needs the admin's model permission: 403 and no row otherwise; the pages
hide what a user may not do; job progress only for users who may view content items."""

import pytest
from django.contrib.auth.models import Permission, User

from avatars.models import VideoJob
from tests.builders import make_stored_item, make_topic
from topics.models import ContentItem, Topic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


def log_in(client, *codenames: str) -> User:
    user = User.objects.create_user("viewer", password="pw-12345-long")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    return log_in(client, "view_topic", "view_contentitem")


@pytest.fixture
def video():
    return make_stored_item(make_topic(), "avatar_videos/avatar_perm_1.mp4", 10)


def test_a_viewer_sees_the_videos_but_no_buttons(client, viewer, video):
    page = client.get(f"/topics/{video.topic_id}/").content.decode()
    assert "avatar_perm_1.mp4" in page and "Download" in page
    for hidden in ("Regenerate", "Delete", "Generate video", "Edit topic"):
        assert hidden not in page
    assert "New topic" not in client.get("/").content.decode()


@pytest.mark.parametrize(
    "path, data",
    [
        ("/topics/{topic}/videos/", {"script": "Paid render", "language": "en"}),
        (
            "/topics/{topic}/videos/confirm/",
            {"source_text": "Paid render", "language": "en", "digest": "0" * 64},
        ),
        ("/topics/{topic}/videos/{item}/cancel/", {}),
        ("/topics/{topic}/delete/", {}),
        ("/topics/{topic}/videos/{item}/regenerate/", {}),
        ("/topics/{topic}/videos/{item}/delete/", {}),
        ("/topics/new/", {"title": "New", "language": "en"}),
        ("/topics/{topic}/edit/", {"title": "Renamed", "language": "en"}),
    ],
)
def test_writes_without_the_permission_are_refused(client, viewer, video, path, data):
    url = path.format(topic=video.topic_id, item=video.pk)
    assert client.post(url, data).status_code == 403
    if "/videos/" not in url or url.endswith(("regenerate/", "delete/")):
        assert client.get(url).status_code in (403, 302)
    assert not VideoJob.objects.exists()
    assert ContentItem.objects.count() == 1 and Topic.objects.get().title == "Photosynthesis"


def test_each_permission_opens_only_its_own_door(client, video):
    log_in(client, "view_topic", "view_contentitem", "regenerate_contentitem")
    page = client.get(f"/topics/{video.topic_id}/").content.decode()
    assert "Regenerate" in page and ">Delete<" not in page
    assert client.post(f"/topics/{video.topic_id}/videos/{video.pk}/delete/").status_code == 403
    assert client.post(f"/topics/{video.topic_id}/videos/{video.pk}/regenerate/").status_code == 302
    assert VideoJob.objects.count() == 1


def test_job_progress_needs_the_view_permission(client, video):
    job = VideoJob.objects.create(content_item=video, script="x", last_error="secret-ish")
    log_in(client, "view_topic")
    assert client.get(f"/avatars/jobs/{job.pk}/progress").status_code == 403
    assert client.get(f"/avatars/jobs/progress?id={job.pk}").status_code == 403
    page = client.get(f"/topics/{video.topic_id}/").content.decode()
    assert "avatar_perm_1.mp4" not in page and "permission to view" in page


def test_anonymous_progress_requests_go_to_the_login(client, video):
    job = VideoJob.objects.create(content_item=video, script="x")
    assert client.get(f"/avatars/jobs/{job.pk}/progress").status_code == 302
