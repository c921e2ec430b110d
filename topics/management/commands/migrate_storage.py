"""Move every stored video (and its other objects) to another storage: a bucket, or local."""

import argparse
import json

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from topics.migration import FAILED, ItemOutcome, MigrationReport, items_to_check, migrate_storage
from videostore.errors import StorageUnavailable

SHOWN_FAILURES = 20


def _size(count: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


def human_report(report: MigrationReport) -> str:
    """The final report as operators read it."""
    urls = "public URLs" if report.target_public else "signed URLs"
    if report.dry_run:
        lines = [f"dry run: {report.would_move} item(s) would move to {report.target} "
                 f"({_size(report.bytes_copied)}, {urls}); nothing was written"]  # fmt: skip
    else:
        lines = [f"moved to {report.target} ({urls}): {report.moved} item(s), "
                 f"{_size(report.bytes_copied)}"]  # fmt: skip
        if report.delete_source:
            lines.append(f"source objects deleted after the switch: {report.sources_deleted}")
        elif report.moved:
            lines.append(f"source objects kept: {report.sources_kept} (reconcile_storage "
                         "--location <source> reports them; see README)")  # fmt: skip
    lines.append(f"already there: {report.already_there}")
    lines.append(f"changed during the move, skipped: {report.changed}")
    lines.append(f"failed: {len(report.failures)}")
    lines += [f"  item {item_id}: {reason}" for item_id, reason in report.failures[:SHOWN_FAILURES]]
    if len(report.failures) > SHOWN_FAILURES:
        lines.append(f"  ... and {len(report.failures) - SHOWN_FAILURES} more")
    return "\n".join(lines)


def non_negative_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from error
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{seconds} is negative; give 0 or more seconds")
    return seconds


class Command(BaseCommand):
    help = (
        "Move every stored video (every object of each item) to another storage: --to a "
        "bucket of the configured S3 endpoint, or --to local (files under MEDIA_ROOT). Each "
        "copy is verified (size, sha256) before its row switches; a rerun resumes. Exit 0 "
        "when every item is where it should be, 1 when some failed, 2 when the target cannot "
        "be reached."
    )

    def add_arguments(self, parser):
        add = parser.add_argument
        add("--to", required=True, dest="target", help="a bucket's name, or 'local'")
        add("--from", default="", dest="source",
            help="only the items in this location (default: every item)")  # fmt: skip
        add("--dry-run", action="store_true", help="report what would move; write nothing")
        add("--delete-source", action="store_true",
            help="delete each source object once its item's switch commits")  # fmt: skip
        add("--pause-seconds", type=non_negative_seconds, default=0.0,
            help="pause after each item moved (spare a busy storage)")  # fmt: skip
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, **options):
        total = len(items_to_check(source=options["source"]))
        bar = tqdm(total=total, unit="item", desc="migrate_storage", file=self.stderr._out,
                   disable=options["no_progress"] or options["verbosity"] == 0)  # fmt: skip

        def on_item(outcome: ItemOutcome) -> None:
            bar.update(1)
            if outcome.outcome == FAILED:
                bar.write(f"item {outcome.item_id}: {outcome.reason}", file=self.stderr._out)

        try:
            report = migrate_storage(
                target=options["target"], source=options["source"],
                dry_run=options["dry_run"], delete_source=options["delete_source"],
                pause_seconds=options["pause_seconds"], on_item=on_item,
            )  # fmt: skip
        except StorageUnavailable as error:
            raise CommandError(f"The target cannot be used: {error}", returncode=2) from error
        finally:
            bar.close()
        if options["json"]:
            self.stdout.write(json.dumps(report.__dict__, default=str))
        else:
            self.stdout.write(human_report(report))
        if report.failures:
            raise CommandError(f"{len(report.failures)} item(s) failed to move", returncode=1)
