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

from avatars import catalog
from avatars.errors import GENERATION_ERRORS, QuotaExceeded
from avatars.inline import run_job_inline
from avatars.models import VideoJob
from avatars.pipeline import OFFLINE_PROVIDER
from avatars.services import avatar_video_request
from studio.status import video_status
from topics.batches import ScriptBatch, plan
from topics.models import ContentItem, Topic
from topics.scripts import SCRIPT_FILE_MAX_BYTES, decode_script_text, parse_batch
from topics.validators import validate_language_tag, validate_title

QUIET_LOGGERS = ("avatars", "topics", "videostore")


def read_script_file(path: str) -> str:
    """The text of FILE, or of stdin for `-` (UTF-8, by the studio's rule)."""
    if path == "-":
        return sys.stdin.read()
    try:
        with Path(path).open("rb") as handle:
            content = handle.read(SCRIPT_FILE_MAX_BYTES + 1)
    except OSError as error:
        raise CommandError(f"Cannot read {path}: {error}", returncode=2) from error
    try:
        return decode_script_text(content)
    except ValidationError as error:
        raise CommandError(f"{path}: {error.messages[0]}", returncode=2) from error


def preview_lines(batch: ScriptBatch) -> list[str]:
    """--dry-run: what would be made, as the studio's preview shows it; nothing requested."""
    count = len(batch.videos)
    lines = [f"{count} video(s), about {batch.total_duration[1:]} of speech in all."]
    if batch.dialect:
        lines.append(f"File read as: {batch.dialect}.")
    for video in batch.videos:
        lines.append(f"  {video.number:>3}. {video.shown_title}  ({video.characters} characters, "
                     f"{video.duration}; {video.source})")  # fmt: skip
    for row in batch.skipped:
        lines.append(f"  skipped {row.source}: {row.reason}")
    quota = catalog.remaining_quota()
    needed = catalog.credits_for(batch.total_seconds)
    if quota is None:
        lines.append("Offline renderer: no credits are used.")
    elif quota.remaining_seconds is None:
        lines.append(f"About {needed} credit(s); HeyGen's remaining quota is unknown "
                     f"({quota.error}).")  # fmt: skip
    else:
        verdict = "enough" if quota.covers(batch.total_seconds) else "NOT enough"
        lines.append(f"About {needed} credit(s); {quota.credits} remain ({verdict}).")
    lines.append("Dry run: nothing was requested.")
    return lines


def check_quota_option(batch: ScriptBatch) -> None:
    """Refuse a batch that needs more than the provider's remaining quota."""
    try:
        catalog.check_quota(batch.total_seconds)
    except QuotaExceeded as error:
        raise CommandError(str(error), returncode=2) from error


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
        parser.add_argument(
            "--topic-id",
            type=int,
            required=True,
            help="the topic's number (in its studio address /topics/N/)",
        )
        script = parser.add_mutually_exclusive_group(required=True)
        script.add_argument("--script", help="what the avatar says")
        script.add_argument("--script-file", help="a UTF-8 file holding the script (- = stdin)")
        parser.add_argument("--title", help="the video's title; default: the script's first words")
        parser.add_argument("--language", default="", help="BCP 47 tag; default: the topic's")
        parser.add_argument("--avatar-id", default="")
        parser.add_argument("--voice-id", default="")
        parser.add_argument("--json", action="store_true", help="print the saved item as JSON")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be made and the quota; request nothing",
        )

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
            script = self.one_script(options["script_file"])
        batch = plan([("The script", script, options["title"])])
        if options["dry_run"]:
            self.stdout.write("\n".join(preview_lines(batch)))
            return
        check_quota_option(batch)
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

    def one_script(self, path: str) -> str:
        """The script of FILE; a file of several scripts (blank-line blocks, CSV rows) is
        refused: the batch command makes those."""
        text = read_script_file(path)
        try:
            batch = parse_batch(file_text=text, file_suffix=Path(path).suffix.lower())
        except ValidationError as error:
            raise CommandError(f"{path}: {error.messages[0]}", returncode=2) from error
        if len(batch.videos) + len(batch.skipped) > 1:
            raise CommandError(
                f"{path} holds {len(batch.videos) + len(batch.skipped)} scripts; this command "
                f"makes one video. Use generate_avatar_videos --scripts-file {path} for "
                "one video each.",
                returncode=2,
            )
        return batch.scripts[0] if batch.videos else text

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
