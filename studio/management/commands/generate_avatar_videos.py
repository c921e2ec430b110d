"""Queue one avatar video per script of a file (blank-line blocks, or a .csv's rows) and, with
--wait, show a progress bar until every job has ended."""

import sys
import time
from collections import Counter

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from avatars import services as generation
from avatars.errors import GENERATION_ERRORS
from avatars.models import VideoJob
from studio.management.commands.generate_avatar_video import (
    check_quota_option,
    lesson_json,
    preview_lines,
    print_json,
    quiet_logs,
    read_script_file,
)
from topics.batches import ScriptBatch
from topics.models import Topic
from topics.scripts import SCRIPT_FILE_MAX_BYTES, check_batch, decode_scripts_file, parse_batch
from topics.validators import validate_language_tag


def read_batch(path: str) -> ScriptBatch:
    """What FILE (`-`: stdin, blank-line blocks) will make, by the studio's rules: a .csv
    one video per row (titles from its title column), else one per blank-line block."""
    try:
        if path == "-":
            batch = parse_batch(text=read_script_file(path))
        else:
            try:
                with open(path, "rb") as handle:
                    content = handle.read(SCRIPT_FILE_MAX_BYTES + 1)  # enough to refuse more
            except OSError as error:
                raise CommandError(f"Cannot read {path}: {error}", returncode=2) from error
            name = path if path.lower().endswith(".csv") else f"{path}.txt"
            suffix, text = decode_scripts_file(name, content)
            batch = parse_batch(file_text=text, file_suffix=suffix)
        return check_batch(batch)
    except ValidationError as error:
        raise CommandError(f"{path}: {error.messages[0]}", returncode=2) from error


class Command(BaseCommand):
    help = (
        "Queue one avatar video per script (scripts separated by a blank line; a .csv: one per "
        "row, titles from its title column), the topic's next lessons in order; prints the job "
        "ids (--json: the lessons). --wait shows progress until all end; exit 1 if any failed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--topic-id",
            type=int,
            required=True,
            help="the topic's number (in its studio address /topics/N/)",
        )
        parser.add_argument("--scripts-file", required=True, help="a .txt or .csv file; - = stdin")
        parser.add_argument("--language", default="", help="BCP 47 tag; default: the topic's")
        parser.add_argument("--avatar-id", default="")
        parser.add_argument("--voice-id", default="")
        parser.add_argument("--wait", action="store_true", help="wait until every job has ended")
        parser.add_argument("--poll-seconds", type=float, default=2.0, help="with --wait")
        parser.add_argument("--json", action="store_true", help="print the lessons as JSON")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print what would be made (videos, skipped rows, quota); request nothing",
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help="generate the valid rows when some are malformed or too long "
            "(default: refuse the file)",
        )

    def handle(self, *args, **options):
        topic = Topic.objects.filter(pk=options["topic_id"]).first()
        if topic is None:
            raise CommandError(f"Topic {options['topic_id']} does not exist.", returncode=2)
        language = options["language"]
        try:
            language = validate_language_tag(language) if language else ""
        except ValidationError as error:
            raise CommandError(f"--language: {error.messages[0]}", returncode=2) from error
        batch = read_batch(options["scripts_file"])
        if options["dry_run"]:
            self.stdout.write("\n".join(preview_lines(batch)))
            return
        invalid = [row for row in batch.skipped if not row.reason.startswith("empty")]
        if invalid and not options["skip_invalid"]:
            rows = "; ".join(f"{row.source}: {row.reason}" for row in invalid[:5])
            raise CommandError(f"{options['scripts_file']}: {len(invalid)} row(s) cannot be "
                               f"generated ({rows}). Fix them, or run with --skip-invalid; "
                               "--dry-run shows the whole preview.", returncode=2)  # fmt: skip
        check_quota_option(batch)
        try:
            jobs = generation.avatar_videos_generate(topic=topic, scripts=batch.scripts,
                                          language=language, avatar_id=options["avatar_id"],
                                          voice_id=options["voice_id"],
                                          titles=batch.titles)  # fmt: skip
        except GENERATION_ERRORS as error:
            raise CommandError(str(error), returncode=2) from error
        ids = [job.pk for job in jobs]
        if not options["json"]:
            self.stdout.write(f"Queued {len(ids)} video(s) for topic {topic.pk} “{topic.title}”.")
            self.stdout.write("jobs: " + " ".join(str(job_id) for job_id in ids))
        try:
            if options["wait"]:
                with quiet_logs(options["verbosity"]):
                    self.wait(ids, options["poll_seconds"], quiet=options["json"])
        finally:
            if options["json"]:
                print_json(self.stdout, self.lessons(ids))

    def lessons(self, job_ids: list[int]) -> list[dict]:
        """The queued lessons in their order, each with its job."""
        jobs = VideoJob.objects.filter(pk__in=job_ids).select_related("content_item")
        return [
            {**lesson_json(job.content_item), "job": {"id": job.pk, "state": job.state,
                                                      "last_error": job.last_error}}
            for job in sorted(jobs, key=lambda job: (job.content_item.position, job.pk))
        ]  # fmt: skip

    def wait(self, job_ids: list[int], poll_seconds: float, *, quiet: bool = False) -> None:
        """Poll the jobs' rows (the workers run them) until every one is terminal."""
        if not quiet:
            self.stdout.write(
                "Waiting for the workers (make run starts one; or manage.py qcluster)."
            )
        bar = tqdm(total=len(job_ids), unit="video", file=sys.stderr, dynamic_ncols=True)
        while True:
            states = dict(VideoJob.objects.filter(pk__in=job_ids).values_list("pk", "state"))
            # A job whose item was deleted meanwhile has ended too.
            done = len(job_ids) - sum(s in VideoJob.ACTIVE_STATES for s in states.values())
            bar.update(done - bar.n)
            bar.set_postfix(Counter(states.values()), refresh=True)
            if done == len(job_ids):
                break
            time.sleep(poll_seconds)
        bar.close()
        self.report(job_ids, quiet=quiet)

    def report(self, job_ids: list[int], *, quiet: bool = False) -> None:
        jobs = VideoJob.objects.filter(pk__in=job_ids).order_by("pk")
        failed = []
        for job in jobs:
            reason = f": {job.last_error}" if job.last_error else ""
            if not quiet:
                self.stdout.write(f"job {job.pk} (item {job.content_item_id}): {job.state}{reason}")
            if job.state == VideoJob.State.FAILED:
                failed.append(job.pk)
        if failed:
            raise CommandError(f"{len(failed)} of {len(job_ids)} video(s) failed.", returncode=1)
        if not quiet:
            self.stdout.write(f"All {len(job_ids)} video(s) done.")
