"""The upload ledger (every stored object that no committed row safely references yet) and the
record of reconciliation runs."""

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class UploadLedgerEntry(models.Model):
    """A storage object that no committed row safely references yet, or that must go.

    `upload` entries are committed *before* the bytes are written and deleted in the same
    transaction that commits the row referencing the object, so a process killed anywhere in
    between leaves an entry for the sweeper. `delete` entries are objects to remove (a rolled
    back save, a replaced video, a failed delete); they are retried until the delete succeeds.
    """

    class Intent(models.TextChoices):
        UPLOAD = "upload", "Upload in flight"
        DELETE = "delete", "Delete pending"

    storage_path = models.CharField(max_length=512, unique=True)
    # The object's bucket: "" is the configured one (entries from before buckets were kept).
    bucket = models.CharField(max_length=63, blank=True, default="")
    intent = models.CharField(max_length=16, choices=Intent.choices, default=Intent.UPLOAD)
    reason = models.CharField(max_length=255, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # An upload belongs to a live process while its lease runs (renewed as the bytes flow);
    # only an expired lease lets a sweeper turn it into a delete.
    owner = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "upload ledger entry"
        verbose_name_plural = "upload ledger"
        ordering = ["created_at"]
        # The table predates this app (it was avatars' own); its name is kept.
        db_table = "avatars_uploadledgerentry"

    def __str__(self) -> str:
        return f"{self.intent}: {self.storage_path}"


class ReconcileRun(models.Model):
    """One reconciliation of storage against the database, as operators see it afterwards.

    Only the last runs are kept (`videostore.runs.KEEP_RUNS`); `report` is the full report,
    `error` says why a run could not finish (storage unreachable)."""

    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(db_index=True)
    fix = models.BooleanField(default=False)
    consistent = models.BooleanField(default=False)
    problems = models.PositiveIntegerField(default=0)
    report = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-finished_at", "-id"]

    def __str__(self) -> str:
        state = "consistent" if self.consistent else f"{self.problems} problem(s)"
        return f"Reconcile run at {self.finished_at:%Y-%m-%d %H:%M:%S} ({state})"
