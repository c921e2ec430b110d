"""Generate one avatar video now, in this process, and print a short summary (or --json)."""

import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.serializers.json import DjangoJSONEncoder
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from avatars.errors import GENERATION_ERRORS
from avatars.inline import run_job_inline
from avatars.models import VideoJob
from avatars.pipeline import OFFLINE_PROVIDER
from avatars.services import avatar_video_request
from studio.status import video_status
from topics.models import ContentItem, Topic
from topics.validators import validate_language_tag, validate_title

QUIET_LOGGERS = ("avatars", "topics", "videostore")


def read_script_file(path: str) -> str:
    """The text of FILE, or of stdin for `-`."""
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CommandError(f"Cannot read {path}: {error}", returncode=2) from error


@contextmanager
def quiet_logs(verbosity: int):
    """Progress log lines only with -v 2: the summary is what a person reads."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    if verbosity < 2:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def lesson_json(item: ContentItem) -> dict:
    """What the commands' --json says of an item, the lesson: the same keys everywhere."""
    return {
        "id": item.pk,
        "topic_id": item.topic_id,
        "title": item.title,
        "position": item.position,
        "content_type": item.content_type,
        "status": item.status,
    }


def print_json(stdout, payload) -> None:
    stdout.write(json.dumps(payload, cls=DjangoJSONEncoder, ensure_ascii=False))


def clean_title_option(title: str | None) -> str:
    """--title by the one title rule (topics/validators.py); none given: ""."""
    if title is None:
        return ""
    try:
        return validate_title(title)
    except ValidationError as error:
        raise CommandError(f"--title: {error.messages[0]}", returncode=2) from error


def summary(job: VideoJob, item: ContentItem) -> str:
    data = item.content_data or {}
    status = video_status(item, job, now=timezone.now())
    lines = [f"{item}, job {job.pk}: {status.label}"]
    lines.append(f"  title     {item.title} (position {item.position} in its topic)")
    if item.storage_path:
        facts = [filesizeformat(data.get("fileSize") or 0)]
        if data.get("duration_seconds"):
            facts.append(f"{data['duration_seconds']:.1f} s")
        if data.get("width"):
            facts.append(f"{data['width']}×{data['height']}")
        lines.append(f"  file      {item.storage_path} ({', '.join(facts)})")
    else:
        lines.append("  file      not in our storage yet: the provider's link plays meanwhile")
        lines.append(f"  reason    {job.last_error}" if job.last_error else "")
    if data.get("fileUrl"):
        lines.append(f"  url       {data['fileUrl'].split('?', 1)[0]}")
    offline = (
        " (offline renderer: a preview, not HeyGen)" if job.provider == OFFLINE_PROVIDER else ""
    )
    lines.append(f"  provider  {job.provider}{offline}")
    lines.append(f"  studio    /topics/{item.topic_id}/#item-{item.pk}")
    return "\n".join(line for line in lines if line)


class Command(BaseCommand):
    help = "Generate an avatar video for a topic, store it and save it; prints a summary."

    def add_arguments(self, parser):
        parser.add_argument("--topic-id", type=int, required=True)
        script = parser.add_mutually_exclusive_group(required=True)
        script.add_argument("--script", help="what the avatar says")
        script.add_argument("--script-file", help="a UTF-8 file holding the script (- = stdin)")
        parser.add_argument("--title", help="the video's title; default: the script's first words")
        parser.add_argument("--language", default="", help="BCP 47 tag; default: the topic's")
        parser.add_argument("--avatar-id", default="")
        parser.add_argument("--voice-id", default="")
        parser.add_argument("--json", action="store_true", help="print the saved item as JSON")

    def handle(self, *args, **options):
        topic = Topic.objects.filter(pk=options["topic_id"]).first()
        if topic is None:
            raise CommandError(f"Topic {options['topic_id']} does not exist.", returncode=2)
        language = options["language"]
        if language:
            try:
                language = validate_language_tag(language)
            except ValidationError as error:
                raise CommandError(f"--language: {error.messages[0]}", returncode=2) from error
        options["title"] = clean_title_option(options["title"])
        script = options["script"]
        if script is None:
            script = read_script_file(options["script_file"])
        with quiet_logs(options["verbosity"]):
            job = self.generate(topic, script, language, options)
        item = job.content_item
        if options["json"]:
            payload = {
                **lesson_json(item),
                "job": {"id": job.pk, "state": job.state, "last_error": job.last_error},
                "content_data": item.content_data,
            }
            print_json(self.stdout, payload)
        else:
            self.stdout.write(summary(job, item))

    def generate(self, topic: Topic, script: str, language: str, options: dict) -> VideoJob:
        try:
            job = avatar_video_request(
                topic=topic,
                script=script,
                language=language,
                avatar_id=options["avatar_id"],
                voice_id=options["voice_id"],
                title=options["title"],
                max_attempts=1,
                enqueue_submit=False,
            )
        except GENERATION_ERRORS as error:
            raise CommandError(str(error), returncode=2) from error
        run_job_inline(job.pk)
        job = VideoJob.objects.select_related("content_item__topic").get(pk=job.pk)
        if job.state == VideoJob.State.FAILED:
            raise CommandError(f"Video generation failed: {job.last_error}")
        return job
