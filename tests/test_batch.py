"""Several scripts at once: the block rule (topics/scripts.py), the batch command with its
--wait progress, and the single command's doors (--script-file, --language, --json)."""

import json
import time
from io import StringIO

import pytest
from django.core.exceptions import ValidationError

from avatars.inline import run_job_inline
from avatars.models import VideoJob
from tests.builders import make_topic, run_command
from topics.models import ContentItem
from topics.scripts import scripts_from_file, split_scripts

BATCH = "generate_avatar_videos"


@pytest.fixture(autouse=True)
def no_inline_tasks(settings):
    settings.Q_CLUSTER = {**settings.Q_CLUSTER, "sync": False}
    settings.OFFLINE_VIDEO_WIDTH, settings.OFFLINE_VIDEO_HEIGHT = 320, 180
    settings.OFFLINE_VIDEO_MAX_SECONDS = 2


def test_scripts_are_split_on_blank_lines_only():
    text = "One,\nstill one.\r\n\r\nTwo.\n   \n\n\nThree.\n\n"
    assert split_scripts(text) == ["One,\nstill one.", "Two.", "Three."]
    assert split_scripts("  \n\n ") == []


def test_a_csv_gives_one_script_per_row_from_its_script_column():
    csv = b'title,script\nIntro,"Hello, class"\nEmpty,\nEnd,Bye\n'
    assert scripts_from_file("lessons.csv", csv) == ["Hello, class", "Bye"]
    assert scripts_from_file("plain.csv", b"First\nSecond\n") == ["First", "Second"]
    assert scripts_from_file("a.txt", "\ufeffשלום\n\nעולם".encode()) == ["שלום", "עולם"]


@pytest.mark.parametrize("name, content", [("a.docx", b"x"), ("a.txt", b"\xff\xfe\x00bad")])
def test_other_files_are_refused_with_a_reason(name, content):
    with pytest.raises(ValidationError):
        scripts_from_file(name, content)


@pytest.mark.django_db
def test_the_batch_command_queues_one_job_per_block_and_prints_the_ids(tmp_path):
    topic = make_topic()
    scripts = tmp_path / "lessons.txt"
    scripts.write_text("First lesson.\n\nSecond lesson.\n\nThird lesson.\n")
    out = StringIO()
    assert run_command(BATCH, "--topic-id", str(topic.pk), "--scripts-file", str(scripts),
                       stdout=out) == 0  # fmt: skip
    jobs = list(VideoJob.objects.order_by("pk"))
    assert [job.script for job in jobs] == ["First lesson.", "Second lesson.", "Third lesson."]
    assert f"jobs: {' '.join(str(job.pk) for job in jobs)}" in out.getvalue()
    assert ContentItem.objects.filter(topic=topic).count() == 3


@pytest.mark.django_db
def test_the_batch_command_reads_stdin(monkeypatch):
    topic = make_topic()
    monkeypatch.setattr("sys.stdin", StringIO("A.\n\nB.\n"))
    assert run_command(BATCH, "--topic-id", str(topic.pk), "--scripts-file", "-",
                       stdout=StringIO()) == 0  # fmt: skip
    assert VideoJob.objects.count() == 2


@pytest.mark.django_db
@pytest.mark.parametrize("content, message", [("\n\n", "Write a script"),
                                              ("x" * 11, "the limit is 10")])  # fmt: skip
def test_the_batch_command_refuses_bad_input_and_queues_nothing(tmp_path, settings, content,
                                                                message):  # fmt: skip
    settings.AVATAR_SCRIPT_MAX_CHARS = 10
    path = tmp_path / "s.txt"
    path.write_text(content)
    err = StringIO()
    code = run_command(BATCH, "--topic-id", str(make_topic().pk), "--scripts-file", str(path),
                       stderr=err)  # fmt: skip
    assert code == 2 and not VideoJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_wait_shows_progress_until_all_end_and_exits_1_if_any_failed(tmp_path, monkeypatch, capsys):
    topic = make_topic()
    path = tmp_path / "s.txt"
    path.write_text("Plants need light.\n\nThis one fails.\n")

    real_sleep = time.sleep
    running = []

    def workers_run(seconds):  # what the job workers do while the command polls
        if running:  # `time` is one module: the inline run's own waits sleep for real
            return real_sleep(seconds)
        running.append(True)
        first, second = VideoJob.objects.order_by("pk")
        run_job_inline(first.pk, poll_interval=0.05)
        VideoJob.objects.filter(pk=second.pk).update(state="failed", last_error="Render refused")
        running.clear()

    monkeypatch.setattr("studio.management.commands.generate_avatar_videos.time.sleep",
                        workers_run)  # fmt: skip
    out, err = StringIO(), StringIO()
    code = run_command(BATCH, "--topic-id", str(topic.pk), "--scripts-file", str(path), "--wait",
                       stdout=out, stderr=err)  # fmt: skip
    assert code == 1
    first, second = VideoJob.objects.order_by("pk")
    assert f"job {first.pk} (item {first.content_item_id}): stored" in out.getvalue()
    assert f"job {second.pk} (item {second.content_item_id}): failed: Render refused" in (
        out.getvalue()
    )
    assert "2/2" in capsys.readouterr().err  # the progress bar reached the end


@pytest.mark.django_db(transaction=True)
def test_the_single_command_prints_a_summary_or_json(tmp_path):
    topic = make_topic("Cells")
    script = tmp_path / "script.txt"
    script.write_text("Cells are small,\nvery small.")
    out = StringIO()
    assert run_command("generate_avatar_video", "--topic-id", str(topic.pk), "--script-file",
                       str(script), stdout=out) == 0  # fmt: skip
    text = out.getvalue()
    assert text.startswith("Avatar video #") and "(Cells), job " in text and ": Stored" in text
    assert "offline renderer" in text and "{" not in text
    assert VideoJob.objects.get().script == "Cells are small,\nvery small."  # one script
    out = StringIO()
    run_command("generate_avatar_video", "--topic-id", str(topic.pk), "--script", "Hi", "--json",
                stdout=out)  # fmt: skip
    assert json.loads(out.getvalue())["status"] == "ready"


@pytest.mark.django_db
@pytest.mark.parametrize("language", ["english!!", "hebrew please"])
@pytest.mark.parametrize("command, script_args", [
    ("generate_avatar_video", ["--script", "Hi"]), (BATCH, ["--scripts-file", "-"])])  # fmt: skip
def test_commands_refuse_a_malformed_language(command, script_args, language, monkeypatch):
    monkeypatch.setattr("sys.stdin", StringIO("Hi"))
    err = StringIO()
    code = run_command(command, "--topic-id", str(make_topic().pk), *script_args,
                       "--language", language, stderr=err)  # fmt: skip
    assert code == 2 and not VideoJob.objects.exists() and not ContentItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_backfill_says_why_a_host_is_refused():
    item = ContentItem.objects.create(
        topic=make_topic(), content_type="avatar_video", status=ContentItem.Status.READY,
        content_data={"videoUrl": "https://evil.example.com/v.mp4?sig=secret", "script": "x"},
    )  # fmt: skip
    out, err = StringIO(), StringIO()
    assert run_command("backfill_avatar_videos", stdout=out, stderr=err) == 1
    line = err.getvalue()
    assert f"item {item.pk} (https://evil.example.com/v.mp4)" in line
    assert "may not be downloaded from evil.example.com" in line and "secret" not in line
    assert "offline provider" not in line


@pytest.mark.django_db
def test_the_batch_command_titles_lessons_from_a_csv_and_prints_them_as_json(tmp_path):
    topic = make_topic()
    path = tmp_path / "lessons.csv"
    path.write_text("title,script\nמבוא,שלום לכולם\n,Second script here.\nEnd,Bye\n")
    out = StringIO()
    assert run_command(BATCH, "--topic-id", str(topic.pk), "--scripts-file", str(path), "--json",
                       stdout=out) == 0  # fmt: skip
    lessons = json.loads(out.getvalue())
    assert [(lesson["title"], lesson["position"]) for lesson in lessons] == [
        ("מבוא", 1), ("Second script here.", 2), ("End", 3)]  # fmt: skip
    items = ContentItem.objects.order_by("position")
    assert [lesson["id"] for lesson in lessons] == [item.pk for item in items]
    assert {lesson["job"]["state"] for lesson in lessons} == {"queued"}


@pytest.mark.django_db
def test_the_batch_command_refuses_a_bad_title_and_queues_nothing(tmp_path):
    path = tmp_path / "lessons.csv"
    path.write_text('title,script\nFine,One\n"Two\nlines",Two\n')
    err = StringIO()
    code = run_command(BATCH, "--topic-id", str(make_topic().pk), "--scripts-file", str(path),
                       stderr=err)  # fmt: skip
    assert code == 2 and not ContentItem.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_single_command_takes_a_title_and_rename_video_changes_it():
    topic = make_topic("Cells")
    out = StringIO()
    args = ["--topic-id", str(topic.pk), "--script", "Cells are small.", "--title", " Lesson one "]
    assert run_command("generate_avatar_video", *args, "--json", stdout=out) == 0
    made = json.loads(out.getvalue())
    assert (made["title"], made["position"], made["status"]) == ("Lesson one", 1, "ready")
    assert run_command("generate_avatar_video", "--topic-id", str(topic.pk), "--script", "Hi",
                       "--title", "a\tb", stderr=StringIO()) == 2  # fmt: skip
    out = StringIO()
    assert run_command("rename_video", "--item-id", str(made["id"]), "--title", "שיעור ראשון",
                       "--json", stdout=out) == 0  # fmt: skip
    kept = ("id", "topic_id", "position", "content_type", "status")
    renamed = json.loads(out.getvalue())
    assert renamed == {**{key: made[key] for key in kept}, "title": "שיעור ראשון"}
    assert ContentItem.objects.get().title == "שיעור ראשון"
    assert run_command("rename_video", "--item-id", str(made["id"]), "--title", " ",
                       stderr=StringIO()) == 2  # fmt: skip
    assert run_command("rename_video", "--item-id", "999999", "--title", "x",
                       stderr=StringIO()) == 2  # fmt: skip
    assert ContentItem.objects.get().title == "שיעור ראשון"
