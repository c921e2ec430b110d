"""Run the video job engine's sweep every few seconds (beside the qcluster workers)."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from avatars.jobs import run_engine


class Command(BaseCommand):
    help = (
        "Every tick: submit queued jobs into free render slots, check due renders, wake copies "
        "whose worker died. Holds no worker; any number may run on any hosts (claims by lease)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--tick", type=float, default=None,
            help=f"seconds between sweeps (default VIDEO_ENGINE_TICK_SECONDS, "
            f"{settings.VIDEO_ENGINE_TICK_SECONDS})",
        )  # fmt: skip
        parser.add_argument("--stop-after", type=float, default=None, help="seconds (tests)")

    def handle(self, *args, **options):
        tick = (
            options["tick"] if options["tick"] is not None else settings.VIDEO_ENGINE_TICK_SECONDS
        )
        if tick <= 0:
            raise CommandError("--tick must be above 0.", returncode=2)
        self.stdout.write(f"Video engine: a sweep every {tick:g} s. Ctrl-C stops it.")
        try:
            run_engine(tick_seconds=tick, stop_after=options["stop_after"])
        except KeyboardInterrupt:
            self.stdout.write("Video engine stopped.")
