"""Compare the avatar video objects in storage with the rows that reference them."""

import json

from django.core.management.base import BaseCommand, CommandError

from avatars.reconcile import reconcile_storage
from videostore.errors import StorageUnavailable


class Command(BaseCommand):
    help = (
        "List storage under the avatar video prefix against the database: orphans, dangling "
        "rows, pending uploads. --fix deletes orphans past the grace period and marks dangling "
        "rows for regeneration. Exit 0 when consistent, 1 when problems remain."
    )

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="repair what can be repaired")
        parser.add_argument("--grace-seconds", type=int, default=None)
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, **options):
        try:
            report = reconcile_storage(fix=options["fix"], grace_seconds=options["grace_seconds"])
        except StorageUnavailable as error:
            raise CommandError(
                f"Reconciliation could not list storage: {error}", returncode=2
            ) from error
        data = report.as_dict()
        if options["json"]:
            self.stdout.write(json.dumps(data, default=str))
        else:
            self.stdout.write(
                f"objects listed: {report.objects_listed}  rows checked: {report.rows_checked}\n"
                f"orphans: {report.orphans} (deleted {report.deleted_orphans}, "
                f"in grace {report.orphans_in_grace})\n"
                f"dangling rows: missing {report.dangling_missing}, size differs "
                f"{report.dangling_size} (marked for regeneration "
                f"{report.marked_for_regeneration})\n"
                f"ledger: pending uploads {report.pending_uploads}, "
                f"pending deletes {report.pending_deletes}\n"
                f"{'consistent' if report.consistent else f'{report.problems} problem(s) remain'}"
            )
        if not report.consistent:
            raise CommandError(
                f"{report.problems} problem(s) remain"
                + ("" if options["fix"] else "; run again with --fix to repair them"),
                returncode=1,
            )
