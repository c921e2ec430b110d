"""The generate form's edges: control characters in uploads, oversized uploads, double posts."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from avatars.models import VideoJob
from tests.builders import generate_through_preview, log_in_author, make_topic
from topics.models import ContentItem

pytestmark = pytest.mark.django_db

AUTHOR_PERMISSIONS = ["view_topic", "view_contentitem", "add_contentitem"]


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}


@pytest.fixture
def author(client):
    return log_in_author(client, AUTHOR_PERMISSIONS)


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
    upload = SimpleUploadedFile("lessons.txt", b"One\tcolumn.\r\n\r\nTwo.\r\n")
    response = generate_through_preview(client, topic, {"scripts_file": upload, "language": "en"})
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
        generation.avatar_videos_generate(topic=topic, scripts=["Fine.", "Not\x00 fine."])
    assert not ContentItem.objects.exists() and not VideoJob.objects.exists()


BIG = 3 * 1024 * 1024  # over the scripts file cap and over Django's in-memory upload size


def test_an_oversized_scripts_file_is_refused_with_a_clear_message(client, author):
    topic = make_topic()
    response = post_file(client, topic, "lessons.csv", b"script\n" + b"a" * BIG)
    assert response.status_code == 400
    page = response.content.decode()
    assert 'id="error-scripts_file"' in page and "The scripts file is over 1 MiB." in page
    assert not ContentItem.objects.exists() and not VideoJob.objects.exists()


def test_uploads_are_kept_up_to_the_cap_plus_one_byte_never_whole(rf, tmp_path, settings):
    """The parser hands the form the first cap + 1 bytes in memory: no temporary file of the
    whole body, and the fields after the file still arrive."""
    from django.core.files.uploadedfile import InMemoryUploadedFile

    from topics.scripts import SCRIPT_FILE_MAX_BYTES

    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    upload = SimpleUploadedFile("lessons.csv", b"x" * BIG)
    request = rf.post("/topics/1/videos/", {"scripts_file": upload, "language": "he"})
    received = request.FILES["scripts_file"]
    assert isinstance(received, InMemoryUploadedFile)
    assert received.size == BIG  # what was sent, for the record
    assert len(received.read()) == SCRIPT_FILE_MAX_BYTES + 1
    assert request.POST["language"] == "he"
    assert list(tmp_path.iterdir()) == []


def test_the_batch_command_reads_a_big_file_only_up_to_the_cap(tmp_path):
    from django.core.management import CommandError, call_command

    path = tmp_path / "lessons.txt"
    path.write_bytes(b"a" * BIG)
    with pytest.raises(CommandError, match="over 1 MiB") as raised:
        call_command("generate_avatar_videos", "--topic-id", str(make_topic().pk),
                     "--scripts-file", str(path))  # fmt: skip
    assert raised.value.returncode == 2 and not VideoJob.objects.exists()


# --- one form, one set of videos --------------------------------------------------------------


def form_token(client, topic) -> str:
    import re

    page = client.get(f"/topics/{topic.pk}/").content.decode()
    return re.search(r'name="request_token" value="([0-9a-f-]{36})"', page).group(1)


def test_each_rendered_form_carries_its_own_token(client, author):
    topic = make_topic()
    assert form_token(client, topic) != form_token(client, topic)


def _confirm_fields(client, topic, data: dict) -> dict:
    """The Confirm form's fields, as the preview of `data` renders them."""
    preview = client.post(f"/topics/{topic.pk}/videos/", data)
    assert preview.status_code == 200
    confirm = preview.context["confirm"]
    return {name: "" if confirm[name].value() is None else confirm[name].value()
            for name in confirm.fields}  # fmt: skip


def test_a_second_post_of_the_same_form_queues_nothing_and_shows_the_first_result(client, author):
    from topics.models import GenerationRequest

    topic = make_topic()
    data = {"script": "One.\n\nTwo.", "language": "en", "request_token": form_token(client, topic)}
    fields = _confirm_fields(client, topic, data)
    assert str(fields["request_token"]) == data["request_token"]  # carried to the Confirm
    first = client.post(f"/topics/{topic.pk}/videos/confirm/", fields)
    assert first.status_code == 302
    jobs = list(VideoJob.objects.order_by("pk"))
    assert len(jobs) == 2

    again = client.post(f"/topics/{topic.pk}/videos/confirm/", fields, follow=True)
    page = again.content.decode()
    assert "These videos were already queued. Nothing new was queued." in page
    assert list(VideoJob.objects.order_by("pk")) == jobs
    assert ContentItem.objects.count() == 2
    request = GenerationRequest.objects.get()
    assert str(request.token) == data["request_token"] and request.topic == topic
    assert sorted(request.item_ids) == sorted(job.content_item_id for job in jobs)


def test_a_refused_post_records_no_token_so_the_corrected_form_still_queues(client, author):
    from topics.models import GenerationRequest

    topic = make_topic()
    token = form_token(client, topic)
    bad = {"script": "Bad \x1b.", "language": "en", "request_token": token}
    refused = client.post(f"/topics/{topic.pk}/videos/", bad)
    assert refused.status_code == 400 and f'value="{token}"' in refused.content.decode()
    assert not GenerationRequest.objects.exists() and not ContentItem.objects.exists()
    fields = _confirm_fields(client, topic, {**bad, "script": "Good."})
    client.post(f"/topics/{topic.pk}/videos/confirm/", fields)
    assert VideoJob.objects.count() == 1 and GenerationRequest.objects.get().item_ids == [
        ContentItem.objects.get().pk
    ]


def test_a_generation_that_fails_rolls_back_its_token_with_its_items(settings):
    """The token and the items commit together: a failure after the token was written
    leaves neither, and the same token may be used again."""
    import uuid

    from avatars import services as generation
    from avatars.errors import InvalidRequest
    from topics.models import GenerationRequest

    topic = make_topic()
    token = uuid.uuid4()
    settings.AVATAR_SCRIPT_MAX_CHARS = 10
    with pytest.raises(InvalidRequest):
        generation.avatar_videos_generate(
            topic=topic, scripts=["Short.", "x" * 11], request_token=token
        )
    assert not GenerationRequest.objects.exists() and not ContentItem.objects.exists()
    jobs = generation.avatar_videos_generate(topic=topic, scripts=["Short."], request_token=token)
    assert GenerationRequest.objects.get().item_ids == [jobs[0].content_item_id]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_posts_of_one_form_create_one_set_of_videos():
    """PostgreSQL: the second request's insert of the token waits on the unique index while
    the first transaction is open, then finds the first request's videos."""
    import threading
    import time
    import uuid

    from django.db import connection, connections, transaction

    from avatars import services as generation
    from avatars.errors import AlreadyQueued
    from topics.models import GenerationRequest

    if connection.vendor != "postgresql":
        pytest.skip("row locks on the unique index are PostgreSQL's; SQLite serialises writers")
    topic = make_topic()
    token = uuid.uuid4()
    first_open, second_waiting = threading.Event(), threading.Event()
    outcome: dict = {}

    def first():
        try:
            with transaction.atomic():
                outcome["first"] = generation.avatar_videos_generate(
                    topic=topic, scripts=["A.", "B."], request_token=token
                )
                first_open.set()
                assert second_waiting.wait(20)
        finally:
            connections.close_all()

    def second():
        assert first_open.wait(20)
        try:
            generation.avatar_videos_generate(
                topic=topic, scripts=["A.", "B."], request_token=token
            )
        except AlreadyQueued as repeat:
            outcome["second"] = repeat.jobs
        finally:
            connections.close_all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    assert first_open.wait(20)
    deadline = time.monotonic() + 20
    with connection.cursor() as cursor:  # the second insert is blocked on the first's row
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query ILIKE '%%topics_generationrequest%%'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the second request never waited on the first's token")
    second_waiting.set()
    for thread in threads:
        thread.join(30)
    assert [job.pk for job in outcome["second"]] == [job.pk for job in outcome["first"]]
    assert VideoJob.objects.count() == 2 and ContentItem.objects.count() == 2
    assert GenerationRequest.objects.count() == 1
