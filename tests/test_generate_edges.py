"""The generate form's edges: control characters in uploads, oversized uploads, double posts."""

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars.models import VideoJob
from tests.builders import make_topic
from topics.models import ContentItem

pytestmark = pytest.mark.django_db

AUTHOR_PERMISSIONS = ["view_topic", "view_contentitem", "add_contentitem"]


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


@pytest.fixture
def author(client):
    user = User.objects.create_user("author", password="pw-12345-long")
    user.user_permissions.add(*Permission.objects.filter(codename__in=AUTHOR_PERMISSIONS))
    client.force_login(user)
    return user


def post_file(client, topic, name: str, content: bytes, **fields):
    upload = SimpleUploadedFile(name, content)
    data = {"scripts_file": upload, "language": "en", **fields}
    return client.post(f"/topics/{topic.pk}/videos/", data)


@pytest.mark.parametrize(
    "name, content, shown",
    [
        ("lessons.txt", b"First lesson.\n\nSecond\x00 lesson.\n", "U+0000"),
        ("lessons.csv", b'script\nOne\n"Two\x00"\n', "U+0000"),
        ("lessons.txt", b"Bell \x07 here.\n", "U+0007"),
        ("lessons.csv", b"script\nEscape \x1b[31m red\n", "U+001B"),
        ("lessons.txt", "Next line \u0085 here.".encode(), "U+0085"),
    ],
)
def test_control_characters_in_a_scripts_file_are_refused(client, author, name, content, shown):
    topic = make_topic()
    response = post_file(client, topic, name, content)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="error-scripts_file"' in page
    assert "control character" in page and shown in page
    assert not ContentItem.objects.exists() and not VideoJob.objects.exists()


def test_tabs_and_line_breaks_in_a_scripts_file_are_fine(client, author):
    topic = make_topic()
    response = post_file(client, topic, "lessons.txt", b"One\tcolumn.\r\n\r\nTwo.\r\n")
    assert response.status_code == 302
    scripts = sorted(job.script for job in VideoJob.objects.all())
    assert scripts == ["One\tcolumn.", "Two."]


@pytest.mark.parametrize("script, shown", [("Hello\x00world", "U+0000"),
                                           ("Hello \x1b world", "U+001B")])  # fmt: skip
def test_control_characters_in_the_script_field_are_refused_by_the_same_rule(
    client, author, script, shown
):
    topic = make_topic()
    response = client.post(f"/topics/{topic.pk}/videos/", {"script": script, "language": "en"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="error-script"' in page
    assert not ContentItem.objects.exists() and not VideoJob.objects.exists()
    if shown != "U+0000":  # Django's own CharField refuses NUL first, with its own message
        assert "control character" in page and shown in page


def test_the_generation_service_refuses_control_characters_from_any_door():
    from avatars import services as generation
    from avatars.errors import InvalidRequest

    topic = make_topic()
    with pytest.raises(InvalidRequest, match="U\\+0000"):
        generation.generate_videos(topic=topic, scripts=["Fine.", "Not\x00 fine."])
    assert not ContentItem.objects.exists() and not VideoJob.objects.exists()
