"""Preview before spending: what a submission will make (numbered scripts, lengths, skipped
rows and why, the CSV dialect, the quota), nothing rendered until Confirm; the commands read
the same way (--dry-run), and the quota refusal against the fake HeyGen over HTTP."""

from io import StringIO

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from avatars import catalog
from avatars.models import VideoJob
from avatars.providers.heygen import HeyGenClient
from tests.builders import log_in_author, make_topic, run_command
from topics.batches import spoken_seconds
from topics.models import ContentItem
from topics.scripts import parse_batch

pytestmark = pytest.mark.django_db

SEMICOLON_CSV = (
    b"title;script\n"
    b"Intro;Hello, class: today we look at light.\n"
    b";;\n"
    b'Broken;"half" quoted\n'
    b"Water;Plants drink water; roots do it.\n"
    b"End;Bye for now.\n"
)


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    cache.clear()


@pytest.fixture
def author(client):
    return log_in_author(client, ["view_topic", "view_contentitem", "add_contentitem"])


def confirm_fields(preview) -> dict:
    confirm = preview.context["confirm"]
    return {name: confirm[name].value() for name in confirm.fields}


def test_spoken_length_is_about_150_words_a_minute():
    assert spoken_seconds("word " * 150) == 60
    assert spoken_seconds("Hi") == 1
    assert spoken_seconds("one two three four five") == 2


def test_a_semicolon_csv_is_read_with_its_empty_and_malformed_rows_reported():
    batch = parse_batch(file_text=SEMICOLON_CSV.decode(), file_suffix=".csv")
    assert batch.dialect == "Semicolon-separated, with a header row (title, script)"
    assert [(v.number, v.title, v.source) for v in batch.videos] == [
        (1, "Intro", "Row 2"), (2, "End", "Row 6")]  # fmt: skip
    reasons = {row.source: row.reason for row in batch.skipped}
    assert reasons["Row 3"] == "empty row"
    assert reasons["Row 4"].startswith("malformed: a quote in the middle of a cell")
    assert reasons["Row 5"] == "malformed: 3 cells where the header has 2 (an unquoted semicolon?)"


@pytest.mark.parametrize("text, delimiter", [("a\tb\nc\td\n", "Tab"), ("a,b\nc,d\n", "Comma")])
def test_headerless_files_say_how_they_were_read(text, delimiter):
    batch = parse_batch(file_text=text, file_suffix=".csv")
    assert batch.dialect == f"{delimiter}-separated, no header row: the first column is the script"
    assert batch.scripts == ["a", "c"]


def test_an_unclosed_quote_is_reported_not_merged():
    with pytest.raises(ValidationError, match="Row 3 opens a quote that is never closed"):
        parse_batch(file_text='script\nOne\n"Two\nThree\nFour\n', file_suffix=".csv")


def test_too_long_scripts_are_skipped_with_their_length(settings):
    settings.AVATAR_SCRIPT_MAX_CHARS = 10
    batch = parse_batch(text="Short one.\n\n" + "x" * 12)
    assert batch.scripts == ["Short one."]
    assert [(r.source, r.reason) for r in batch.skipped] == [
        ("Block 2", "too long: 12 characters, the limit is 10")]  # fmt: skip


def test_the_preview_shows_the_batch_and_nothing_is_queued_until_confirm(client, author):
    topic = make_topic()
    upload = SimpleUploadedFile("lessons.csv", SEMICOLON_CSV)
    preview = client.post(f"/topics/{topic.pk}/videos/", {"scripts_file": upload,
                                                          "language": "en"})  # fmt: skip
    page = preview.content.decode()
    assert preview.status_code == 200
    assert "File read as: Semicolon-separated, with a header row (title, script)." in page
    assert "<strong>2 videos</strong>" in page and "Left out (2)" not in page
    assert "Left out (3)" in page and "<strong>Row 3</strong>: empty row" in page
    assert "<strong>Row 5</strong>: malformed: 3 cells" in page
    assert '<td class="figure">37</td>' in page  # "Hello, class: today we look at light."
    assert "no credits are used" in page  # the offline renderer
    assert not VideoJob.objects.exists() and not ContentItem.objects.exists()

    response = client.post(f"/topics/{topic.pk}/videos/confirm/", confirm_fields(preview))
    assert response.status_code == 302 and "batch=" in response["Location"]
    items = list(ContentItem.objects.order_by("position"))
    assert [item.title for item in items] == ["Intro", "End"]
    assert [job.script for job in VideoJob.objects.order_by("pk")] == [
        "Hello, class: today we look at light.", "Bye for now."]  # fmt: skip
    followed = client.get(response["Location"]).content.decode()
    assert "2 videos queued as lessons 1 to 2." in followed


def test_confirm_renders_only_what_was_previewed(client, author):
    topic = make_topic()
    preview = client.post(f"/topics/{topic.pk}/videos/", {"script": "One.\n\nTwo.",
                                                          "language": "en"})  # fmt: skip
    fields = confirm_fields(preview)
    fields["source_text"] += "\n\nThree, added later."
    response = client.post(f"/topics/{topic.pk}/videos/confirm/", fields, follow=True)
    assert "The scripts changed since the preview" in response.content.decode()
    assert not VideoJob.objects.exists()


def test_the_script_box_and_a_file_together_are_refused(client, author):
    topic = make_topic()
    upload = SimpleUploadedFile("lessons.txt", b"From the file.")
    response = client.post(f"/topics/{topic.pk}/videos/", {"script": "From the box.",
                                                           "scripts_file": upload,
                                                           "language": "en"})  # fmt: skip
    assert response.status_code == 400
    assert "Use the script box or a file, not both" in response.content.decode()
    assert not VideoJob.objects.exists()


def test_an_unclosed_quote_is_a_form_error(client, author):
    topic = make_topic()
    upload = SimpleUploadedFile("lessons.csv", b'script\nOne\n"Two\nThree\n')
    response = client.post(f"/topics/{topic.pk}/videos/", {"scripts_file": upload,
                                                           "language": "en"})  # fmt: skip
    assert response.status_code == 400
    assert "Row 3 opens a quote that is never closed" in response.content.decode()


def test_the_heygen_quota_is_read_over_http_and_cached(fake_heygen):
    fake_heygen.remaining_quota = 90
    assert HeyGenClient().remaining_quota() == 90
    assert catalog.remaining_quota() == catalog.Quota(90)
    fake_heygen.remaining_quota = 30
    assert catalog.remaining_quota().remaining_seconds == 90  # cached briefly
    assert catalog.remaining_quota(fresh=True).remaining_seconds == 30
    assert fake_heygen.requests_seen.count("GET /v2/user/remaining_quota") == 3


def test_a_batch_that_needs_more_than_the_quota_is_refused(client, author, fake_heygen):
    fake_heygen.remaining_quota = 20  # seconds of video: one short script fits, not three
    topic = make_topic()
    scripts = "\n\n".join(["word " * 20] * 3)  # 8 s each
    preview = client.post(f"/topics/{topic.pk}/videos/", {"script": scripts, "language": "en"})
    page = preview.content.decode()
    assert preview.status_code == 409
    assert "need about 1 credit(s) (24 s of video) and HeyGen has 0 left (20 s)" in page
    assert 'data-action="confirm"' not in page
    forced = client.post(f"/topics/{topic.pk}/videos/confirm/", confirm_fields(preview))
    assert forced.status_code == 409 and not VideoJob.objects.exists()
    fake_heygen.remaining_quota = 600
    cache.clear()
    preview = client.post(f"/topics/{topic.pk}/videos/", {"script": scripts, "language": "en"})
    assert preview.status_code == 200 and "10 credits (600 s of video) remain" in (
        preview.content.decode()
    )


def test_the_batch_command_dry_run_prints_the_preview_and_queues_nothing(tmp_path):
    path = tmp_path / "lessons.csv"
    path.write_bytes(SEMICOLON_CSV)
    out = StringIO()
    code = run_command("generate_avatar_videos", "--topic-id", str(make_topic().pk),
                       "--scripts-file", str(path), "--dry-run", stdout=out)  # fmt: skip
    text = out.getvalue()
    assert code == 0 and not VideoJob.objects.exists()
    assert "2 video(s)" in text and "Semicolon-separated" in text
    assert "skipped Row 3: empty row" in text and "skipped Row 5: malformed" in text
    assert "Dry run: nothing was requested." in text


def test_the_batch_command_refuses_malformed_rows_unless_told_to_skip_them(tmp_path):
    path = tmp_path / "lessons.csv"
    path.write_bytes(SEMICOLON_CSV)
    topic = make_topic()
    err = StringIO()
    args = ["--topic-id", str(topic.pk), "--scripts-file", str(path)]
    assert run_command("generate_avatar_videos", *args, stderr=err) == 2
    assert not VideoJob.objects.exists()
    assert run_command("generate_avatar_videos", *args, "--skip-invalid", stdout=StringIO()) == 0
    assert VideoJob.objects.count() == 2


def test_the_batch_command_refuses_a_batch_over_the_quota(tmp_path, fake_heygen):
    fake_heygen.remaining_quota = 5
    path = tmp_path / "lessons.txt"
    path.write_text("word " * 40 + "\n\n" + "word " * 40)
    err = StringIO()
    code = run_command("generate_avatar_videos", "--topic-id", str(make_topic().pk),
                       "--scripts-file", str(path), stderr=err)  # fmt: skip
    assert code == 2 and not VideoJob.objects.exists()


def test_the_single_command_refuses_a_file_of_several_scripts_and_names_the_batch_command(
    tmp_path,
):
    path = tmp_path / "two.txt"
    path.write_text("One script.\n\nAnother script.")
    with pytest.raises(CommandError, match="generate_avatar_videos --scripts-file"):
        call_command("generate_avatar_video", "--topic-id", str(make_topic().pk),
                     "--script-file", str(path))  # fmt: skip
    assert not ContentItem.objects.exists()


def test_the_single_command_says_a_png_is_not_utf8_text(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(CommandError, match="picture.png: The scripts file is not UTF-8 text."):
        call_command("generate_avatar_video", "--topic-id", str(make_topic().pk),
                     "--script-file", str(path))  # fmt: skip


def test_the_single_command_dry_run(tmp_path):
    out = StringIO()
    code = run_command("generate_avatar_video", "--topic-id", str(make_topic().pk),
                       "--script", "Cells are small.", "--dry-run", stdout=out)  # fmt: skip
    assert code == 0 and not ContentItem.objects.exists()
    assert "1 video(s)" in out.getvalue() and "Cells are small." in out.getvalue()
