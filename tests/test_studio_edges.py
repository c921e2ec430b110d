"""The rest of a course-scale studio: deleting a topic (studio and admin say what goes),
a 403 that names the missing permission, Storage health only with the jobs permission,
/healthz/ like /healthz, and reconcile_storage's command-line edges."""

from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command

from avatars import services as generation
from tests.builders import make_stored_item, make_topic, run_command
from topics.models import ContentItem, Topic

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


def log_in(client, *codenames: str, staff: bool = False) -> User:
    user = User.objects.create_user("someone", password="pw-12345-long", is_staff=staff)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return user


def test_deleting_a_topic_in_the_studio_names_what_goes(
    client, s3_server, bucket_keys, django_capture_on_commit_callbacks
):
    from tests.conftest import BUCKET

    log_in(client, "view_topic", "view_contentitem", "delete_topic", "delete_contentitem")
    topic = make_topic("Old course")
    s3_server.client().put_object(Bucket=BUCKET, Key="avatar_videos/avatar_td_1.mp4", Body=b"x")
    make_stored_item(topic, "avatar_videos/avatar_td_1.mp4", 1)
    generation.avatar_videos_generate(topic=topic, scripts=["Not rendered yet."])
    page = client.get(f"/topics/{topic.pk}/").content.decode()
    assert 'data-action="delete-topic"' in page
    confirm = client.get(f"/topics/{topic.pk}/delete/").content.decode()
    assert "<strong>2 videos</strong> go with it" in confirm
    assert "<strong>1 file</strong> is deleted from storage" in confirm
    assert Topic.objects.filter(pk=topic.pk).exists()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/topics/{topic.pk}/delete/", follow=True)
    assert "Topic “Old course” deleted with its 2 videos; 1 file is removed from storage." in (
        response.content.decode()
    )
    assert not Topic.objects.exists() and not ContentItem.objects.exists()
    assert bucket_keys() == []


def test_deleting_a_topic_needs_both_delete_permissions(client):
    log_in(client, "view_topic", "delete_topic")
    topic = make_topic()
    response = client.post(f"/topics/{topic.pk}/delete/")
    assert response.status_code == 403 and Topic.objects.exists()
    page = response.content.decode()
    assert "topics.delete_contentitem" in page and "Ask an administrator" in page


def test_a_403_names_the_missing_permission(client):
    log_in(client, "view_topic")
    topic = make_topic()
    response = client.post(f"/topics/{topic.pk}/videos/", {"script": "Hi", "language": "en"})
    page = response.content.decode()
    assert response.status_code == 403
    assert "“Can add content item” (topics.add_contentitem)" in page
    assert "Ask an administrator to grant it." in page


def test_the_admins_topic_deletion_says_files_go_from_storage(admin_client):
    topic = make_topic()
    page = admin_client.get(f"/admin/topics/topic/{topic.pk}/delete/").content.decode()
    assert "video files are deleted from storage" in page


def test_storage_health_needs_the_jobs_permission(client):
    log_in(client, staff=True)
    assert client.get("/admin/storage-health/").status_code == 403
    assert "Storage health" not in client.get("/admin/").content.decode()
    user = User.objects.get()
    user.user_permissions.add(Permission.objects.get(codename="view_videojob"))
    assert client.get("/admin/storage-health/").status_code == 200
    assert "Storage health" in client.get("/admin/").content.decode()


def test_healthz_answers_with_and_without_the_slash(client):
    plain, slashed = client.get("/healthz"), client.get("/healthz/")
    assert plain.status_code == slashed.status_code
    assert plain.json().keys() == slashed.json().keys()


def test_reconcile_says_run_again_with_fix_once(s3_server, caplog):
    make_stored_item(make_topic(), "avatar_videos/avatar_gone_1.mp4", 10)
    out = StringIO()
    caplog.set_level("INFO")
    with pytest.raises(CommandError) as raised:
        call_command("reconcile_storage", "--grace-seconds", "0", stdout=out)
    said = out.getvalue() + str(raised.value)
    assert said.lower().count("run again with --fix") == 1
    # No 300-character log line before the report (it is there with -v 2, for log files).
    assert not [r for r in caplog.records if r.getMessage().startswith("storage reconciled")]
    with pytest.raises(CommandError):
        call_command("reconcile_storage", "--grace-seconds", "0", verbosity=2, stdout=out)
    assert [r for r in caplog.records if r.getMessage().startswith("storage reconciled")]


def test_reconcile_refuses_a_negative_grace_period():
    err = StringIO()
    with pytest.raises((CommandError, SystemExit)):
        call_command("reconcile_storage", "--grace-seconds", "-5", stderr=err)
    assert run_command("reconcile_storage", "--grace-seconds", "-5", stderr=err) != 0


def test_the_topic_id_option_is_explained():
    from studio.management.commands.generate_avatar_videos import Command

    parser = Command().create_parser("manage.py", "generate_avatar_videos")
    assert "/topics/N/" in parser.format_help()
