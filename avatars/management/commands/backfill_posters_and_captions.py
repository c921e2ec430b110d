"""Give stored videos made before posters and captions existed their poster and captions."""

import sys
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from avatars.backfill import add_poster_and_captions
from topics.selectors import items_without_poster_or_captions
from videostore.errors import VideoStoreError


class Command(BaseCommand):
    help = (
        "Make and store the poster and captions of stored videos that lack them, one video at "
        "a time (resumable: run it again to continue), with a progress bar."
    )

    def add_arguments(self, parser):
        parser.add_argument("--limit", type=int, default=None, help="stop after N videos")
        parser.add_argument("--dry-run", action="store_true", help="only count the videos")
        parser.add_argument("--replace-placeholders", action="store_true",
                            help="also try again where the poster is the placeholder")  # fmt: skip

    def handle(self, *args, **options):
        limit = options["limit"]
        if limit is not None and limit < 1:
            raise CommandError("--limit must be 1 or more.", returncode=2)
        items = items_without_poster_or_captions(placeholders=options["replace_placeholders"])
        total = items.count() if limit is None else min(items.count(), limit)
        if options["dry_run"]:
            self.stdout.write(f"{total} stored video(s) without a poster or captions.")
            return
        outcomes: Counter = Counter()
        failed: list[tuple[int, str]] = []
        # The command's own error stream (call_command's stderr=), not its line-ending wrapper.
        stream = getattr(self.stderr, "_out", sys.stderr)
        progress = tqdm(total=total, unit="video", file=stream, disable=total == 0)
        for item in items.iterator(chunk_size=100):
            if progress.n >= total:
                break
            try:
                outcome = add_poster_and_captions(
                    item, replace_placeholder=options["replace_placeholders"]
                )
            except VideoStoreError as error:
                failed.append((item.pk, str(error)))
                outcome = "failed"
            outcomes[outcome] += 1
            progress.update(1)
        progress.close()
        for item_id, reason in failed:
            self.stderr.write(f"item {item_id}: {reason}")
        self.stdout.write(
            f"poster and captions added to {outcomes['added']} of {total} video(s); "
            f"{outcomes['failed']} failed, {outcomes['missing_video']} with their video missing "
            f"(run reconcile_storage), {outcomes['stale']} changed meanwhile, "
            f"{outcomes['skipped']} already complete."
        )
        if failed:
            raise CommandError(f"{len(failed)} video(s) could not be given a poster and "
                               "captions; run the command again.", returncode=1)  # fmt: skip
