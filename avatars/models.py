"""Durable records of avatar video generation: jobs and the webhook events already handled."""

import uuid

from django.db import models
from django.db.models import Q

from topics.models import ContentItem


class VideoJob(models.Model):
    """One generation of one content item's avatar video, with its visible state."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RENDERING = "rendering", "Rendering"
        DOWNLOADING = "downloading", "Downloading"
        UPLOADING = "uploading", "Uploading"
        STORED = "stored", "Stored"
        FALLBACK = "fallback", "Stored at provider only (fallback)"
        FAILED = "failed", "Failed"

    ACTIVE_STATES = (State.QUEUED, State.RENDERING, State.DOWNLOADING, State.UPLOADING)
    TERMINAL_STATES = (State.STORED, State.FALLBACK, State.FAILED)

    content_item = models.ForeignKey(
        ContentItem, on_delete=models.CASCADE, related_name="video_jobs"
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED)
    script = models.TextField()
    language = models.CharField(max_length=16, default="en")
    avatar_id = models.CharField(max_length=128, blank=True)
    voice_id = models.CharField(max_length=128, blank=True)
    provider = models.CharField(max_length=16, blank=True)
    provider_video_id = models.CharField(max_length=128, blank=True, db_index=True)
    # The create call in flight: the title it carries (unique to this submission, so the
    # render can be found again in the provider's list) and when it was sent, on the
    # database's clock. Set before the call; a rendering job with a title and no video id is
    # "outcome unknown" until a lookup adopts the render or proves it absent.
    submission_title = models.CharField(max_length=255, blank=True)
    submission_sent_at = models.DateTimeField(null=True, blank=True)
    # How long the provider is expected to take, learned from recent renders (None: no
    # history yet): the first status check is timed from it.
    expected_render_seconds = models.FloatField(null=True, blank=True)
    # With no history and no webhook, one render of those sent is checked often (the pilot):
    # when it ends, the renders sent with it are timed from it (`steps.learn_from_ended`).
    pilot = models.BooleanField(default=False)
    callback_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    provider_url_expires_at = models.DateTimeField(null=True, blank=True)
    # The finished render's signed links as its check got them (RenderStatus.links): a copy
    # woken for a worker uses them while they stay valid instead of asking the provider again.
    rendered_links = models.JSONField(default=dict, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(default=3)
    last_error = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    rendered_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The engine of short steps: who holds the job and until when (a lease, renewed while a
    # step works), when the render is next checked, and what the copy has done so far.
    claimed_by = models.CharField(max_length=64, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    next_check_at = models.DateTimeField(null=True, blank=True)
    # A copy's wake-up call in the broker, not yet taken by a worker (one at most per job).
    wakeup_sent_at = models.DateTimeField(null=True, blank=True)
    render_checks = models.PositiveIntegerField(default=0)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    bytes_total = models.BigIntegerField(null=True, blank=True)
    bytes_copied = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-queued_at", "-id"]
        constraints = [
            # One running generation per content item: a second request joins this one.
            models.UniqueConstraint(
                fields=["content_item"],
                condition=Q(state__in=["queued", "rendering", "downloading", "uploading"]),
                name="videojob_one_active_per_item",
            )
        ]
        indexes = [
            models.Index(fields=["state", "queued_at"], name="videojob_state_queued"),
            models.Index(fields=["state", "next_check_at"], name="videojob_state_next_check"),
            models.Index(fields=["state", "lease_expires_at"], name="videojob_state_lease"),
        ]

    def __str__(self) -> str:
        return f"Video job #{self.pk} ({self.state}) for item {self.content_item_id}"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES


class WebhookEvent(models.Model):
    """A provider webhook already handled; a replay of the same body changes nothing."""

    digest = models.CharField(max_length=64, unique=True)  # sha256 of the raw body
    event_type = models.CharField(max_length=64)
    provider_video_id = models.CharField(max_length=128, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} {self.provider_video_id}"


class ProcessHeartbeat(models.Model):
    """The last sign of life of one background process (`run_video_engine`, a qcluster),
    on the database's clock, so /healthz can say when a kind of process is missing."""

    class Kind(models.TextChoices):
        ENGINE = "engine", "Video engine (run_video_engine)"
        WORKERS = "workers", "Job workers (qcluster)"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=128)  # host:pid
    seen_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["kind", "name"], name="heartbeat_one_per_process")
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.name} at {self.seen_at:%Y-%m-%d %H:%M:%S}"
