"""Compare the avatar video objects in storage with the rows that reference them."""

import argparse
import json
import logging

from django.core.management.base import BaseCommand, CommandError

from topics.reconcile import ReconcileReport, reconcile_storage
from videostore.errors import StorageUnavailable
from videostore.storage import VideoStorage

#: Sample paths printed per problem in the human output (the JSON has up to 50).
SHOWN_SAMPLES = 10


def _sample_lines(title: str, samples: list[dict], count: int, describe) -> list[str]:
    if not samples:
        return []
    lines = [f"  {title}:"]
    lines += [f"    {describe(sample)}" for sample in samples[:SHOWN_SAMPLES]]
    if count > SHOWN_SAMPLES:
        lines.append(f"    ... and {count - SHOWN_SAMPLES} more")
    return lines


def human_report(report: ReconcileReport, *, fix: bool) -> str:
    """The report as operators read it: counts, then sample paths for each problem."""
    samples = report.samples
    lines = [
        f"objects listed: {report.objects_listed}  rows checked: {report.rows_checked}",
        f"orphans: {report.orphans} (deleted {report.deleted_orphans}, "
        f"in grace {report.orphans_in_grace})",
        f"dangling rows: missing {report.dangling_missing}, size differs "
        f"{report.dangling_size} (marked for regeneration {report.marked_for_regeneration})",
        f"unfinished multipart uploads: stale {report.stale_multipart_uploads} "
        f"(aborted {report.aborted_multipart_uploads}, "
        f"in flight {report.multipart_uploads_in_flight})",
        f"ledger: pending uploads {report.pending_uploads}, "
        f"pending deletes {report.pending_deletes} (failed deletes {report.failed_deletes})",
    ]
    if report.kept_copies:
        lines.append(f"copies kept by a move (rows now elsewhere; not orphans): "
                     f"{report.kept_copies} (deleted {report.deleted_kept_copies})")  # fmt: skip
    if report.other_buckets:
        lines.append("rows in other buckets (not checked here): " + ", ".join(
            f"{bucket} {rows}" for bucket, rows in report.other_buckets.items()))  # fmt: skip
    lines += _sample_lines(
        "orphans", samples.get("orphans", []), report.orphans,
        lambda s: f"{s['storage_path']} ({s['size']} bytes)",
    )  # fmt: skip
    lines += _sample_lines(
        "dangling rows", samples.get("dangling", []),
        report.dangling_missing + report.dangling_size,
        lambda s: f"{s['storage_path']} (item {s['item_id']}, {s['reason']})",
    )  # fmt: skip
    lines += _sample_lines(
        "stale multipart uploads", samples.get("stale_multipart", []),
        report.stale_multipart_uploads,
        lambda s: f"{s['storage_path']} (started {s['initiated'] or 'at an unknown time'})",
    )  # fmt: skip
    if report.consistent:
        lines.append("consistent")
    else:
        lines.append(f"{report.problems} problem(s) remain")
        if not fix:
            lines.append("Run again with --fix to repair them.")
    return "\n".join(lines)


def non_negative_seconds(value: str) -> int:
    """--grace-seconds: a whole number of seconds, 0 or more."""
    try:
        seconds = int(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds") from error
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"{seconds} is negative; give 0 or more seconds")
    return seconds


class Command(BaseCommand):
    help = (
        "List storage under the avatar video prefix against the database: orphans, dangling "
        "rows, pending uploads, unfinished multipart uploads. --fix deletes orphans past the "
        "grace period, aborts stale multipart uploads and marks dangling rows for "
        "regeneration. Exit 0 when consistent, 1 when problems remain, 2 when storage is "
        "unreachable."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="repair what can be repaired")
        parser.add_argument(
            "--grace-seconds", type=non_negative_seconds, default=None,
            help="leave objects younger than this alone (default: the configured grace period)",
        )  # fmt: skip
        parser.add_argument("--json", action="store_true", help="print the report as JSON")
        parser.add_argument(
            "--location", default="",
            help="check this bucket, or 'local' for files under MEDIA_ROOT (default: the "
            "configured storage)",
        )  # fmt: skip
        parser.add_argument(
            "--delete-kept-copies", action="store_true",
            help="with --fix: also delete the copies a move (migrate_storage without "
            "--delete-source) left here",
        )  # fmt: skip

    def handle(self, *args, **options):
        if options["delete_kept_copies"] and not options["fix"]:
            raise CommandError("--delete-kept-copies needs --fix.", returncode=2)
        # The run's one-line log summary is for log files; a person reads the report below.
        summary_log = logging.getLogger("topics.reconcile")
        level = summary_log.level
        if options["verbosity"] < 2:
            summary_log.setLevel(logging.WARNING)
        try:
            video_storage = VideoStorage().in_bucket(options["location"])
            report = reconcile_storage(
                fix=options["fix"],
                grace_seconds=options["grace_seconds"],
                video_storage=video_storage,
                delete_kept_copies=options["delete_kept_copies"],
            )
        except StorageUnavailable as error:
            raise CommandError(
                f"Reconciliation could not list storage: {error}", returncode=2
            ) from error
        finally:
            summary_log.setLevel(level)
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict(), default=str))
        else:
            self.stdout.write(human_report(report, fix=options["fix"]))
        if not report.consistent:
            # The human report already said "Run again with --fix" once.
            hint = not options["fix"] and options["json"]
            raise CommandError(
                f"{report.problems} problem(s) remain"
                + ("; run again with --fix to repair them" if hint else ""),
                returncode=1,
            )
