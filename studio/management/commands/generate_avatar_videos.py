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
from studio.management.commands.generate_avatar_video import quiet_logs, read_script_file
from topics.models import Topic
from topics.scripts import (
    SCRIPT_FILE_MAX_BYTES,
    check_script_count,
    scripts_from_file,
    split_scripts,
)
from topics.validators import validate_language_tag


def read_scripts(path: str) -> list[str]:
    """The scripts of FILE (`-`: stdin, blank-line blocks), by the studio form's rule."""
    try:
        if path == "-":
            return check_script_count(split_scripts(read_script_file(path)))
        try:
            with open(path, "rb") as handle:
                content = handle.read(SCRIPT_FILE_MAX_BYTES + 1)  # enough to refuse more
        except OSError as error:
            raise CommandError(f"Cannot read {path}: {error}", returncode=2) from error
        name = path if path.lower().endswith(".csv") else f"{path}.txt"
        return check_script_count(scripts_from_file(name, content))
    except ValidationError as error:
        raise CommandError(f"{path}: {error.messages[0]}", returncode=2) from error


class Command(BaseCommand):
    help = (
        "Queue one avatar video per script (scripts separated by a blank line; a .csv: one per "
        "row); prints the job ids. --wait shows progress until all end; exit 1 if any failed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--topic-id", type=int, required=True)
        parser.add_argument("--scripts-file", required=True, help="a .txt or .csv file; - = stdin")
        parser.add_argument("--language", default="", help="BCP 47 tag; default: the topic's")
        parser.add_argument("--avatar-id", default="")
        parser.add_argument("--voice-id", default="")
        parser.add_argument("--wait", action="store_true", help="wait until every job has ended")
        parser.add_argument("--poll-seconds", type=float, default=2.0, help="with --wait")

    def handle(self, *args, **options):
        topic = Topic.objects.filter(pk=options["topic_id"]).first()
        if topic is None:
            raise CommandError(f"Topic {options['topic_id']} does not exist.", returncode=2)
        language = options["language"]
        try:
            language = validate_language_tag(language) if language else ""
        except ValidationError as error:
            raise CommandError(f"--language: {error.messages[0]}", returncode=2) from error
        scripts = read_scripts(options["scripts_file"])
        try:
            jobs = generation.generate_videos(topic=topic, scripts=scripts, language=language,
                                          avatar_id=options["avatar_id"],
                                          voice_id=options["voice_id"])  # fmt: skip
        except GENERATION_ERRORS as error:
            raise CommandError(str(error), returncode=2) from error
        ids = [job.pk for job in jobs]
        self.stdout.write(f"Queued {len(ids)} video(s) for topic {topic.pk} “{topic.title}”.")
        self.stdout.write("jobs: " + " ".join(str(job_id) for job_id in ids))
        if options["wait"]:
            with quiet_logs(options["verbosity"]):
                self.wait(ids, options["poll_seconds"])

    def wait(self, job_ids: list[int], poll_seconds: float) -> None:
        """Poll the jobs' rows (the workers run them) until every one is terminal."""
        self.stdout.write("Waiting for the workers (make run starts one; or manage.py qcluster).")
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
        self.report(job_ids)

    def report(self, job_ids: list[int]) -> None:
        jobs = VideoJob.objects.filter(pk__in=job_ids).order_by("pk")
        failed = []
        for job in jobs:
            reason = f": {job.last_error}" if job.last_error else ""
            self.stdout.write(f"job {job.pk} (item {job.content_item_id}): {job.state}{reason}")
            if job.state == VideoJob.State.FAILED:
                failed.append(job.pk)
        if failed:
            raise CommandError(f"{len(failed)} of {len(job_ids)} video(s) failed.", returncode=1)
        self.stdout.write(f"All {len(job_ids)} video(s) done.")
