"""Topics and the content items generated for them."""

from django.db import models
from django.db.models import Q

from topics.validators import (
    LANGUAGE_MAX_CHARS,
    TITLE_MAX_CHARS,
    default_title,
    validate_language_tag,
    validate_title,
)

RTL_LANGUAGES = {"he", "ar", "fa", "ur", "yi", "ps", "dv", "ckb", "sd", "ug"}


class Topic(models.Model):
    """A lesson topic; content items (avatar videos, text, quizzes...) hang off it."""

    title = models.CharField(max_length=255)
    language = models.CharField(
        max_length=LANGUAGE_MAX_CHARS,
        default="en",
        validators=[validate_language_tag],
        help_text="BCP 47 code, e.g. en, he, pt-BR",
    )
    description = models.TextField(blank=True)
    # The avatar and voice the topic's videos use unless a request names others (blank: the
    # provider's defaults, HEYGEN_DEFAULT_AVATAR_ID / HEYGEN_DEFAULT_VOICE_ID).
    default_avatar_id = models.CharField(max_length=128, blank=True)
    default_voice_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["title"])]

    def __str__(self) -> str:
        return self.title

    @property
    def is_rtl(self) -> bool:
        return self.language.split("-")[0].lower() in RTL_LANGUAGES

    @property
    def text_direction(self) -> str:
        return "rtl" if self.is_rtl else "ltr"


class ContentItem(models.Model):
    """One piece of generated content, a lesson of its topic: a title, a place in the topic's
    order (`position`, then id), and for an avatar video its metadata in `content_data`."""

    class ContentType(models.TextChoices):
        TEXT = "text", "Text"
        AVATAR_VIDEO = "avatar_video", "Avatar video"
        PRESENTATION = "presentation", "Presentation"
        QUIZ = "quiz", "Quiz"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        GENERATING = "generating", "Generating"
        READY = "ready", "Ready (stored)"
        NEEDS_STORAGE = "needs_storage", "Needs storage (provider URL)"
        NEEDS_REGENERATION = "needs_regeneration", "Needs regeneration"
        FAILED = "failed", "Failed"

    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="content_items")
    content_type = models.CharField(max_length=32, choices=ContentType.choices)
    title = models.CharField(max_length=TITLE_MAX_CHARS, validators=[validate_title])
    # The lesson's place in its topic: lessons read by (position, id), first lesson first.
    position = models.PositiveIntegerField(default=0)
    content_data = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.DRAFT)
    # Mirrors content_data["storagePath"] so reconciliation and uniqueness use an index.
    storage_path = models.CharField(max_length=512, blank=True, default="", db_index=True)
    # Mirrors content_data["storageBucket"]: where the item's objects are, a bucket's name or
    # "local" (files under MEDIA_ROOT; videostore.locations). "" only without a stored object
    # (rows stored before locations were recorded got theirs in migration 0011; code still
    # reads "" as the configured location).
    storage_bucket = models.CharField(max_length=63, blank=True, default="")
    # Mirror content_data["posterPath"] / ["captionsPath"]: the video's poster (JPEG) and
    # captions (WebVTT), in the video's bucket (topics/objects.py lists all three).
    poster_path = models.CharField(max_length=512, blank=True, default="", db_index=True)
    captions_path = models.CharField(max_length=512, blank=True, default="", db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["topic_id", "position", "id"]
        constraints = [
            # Two rows never share one stored object: deleting one would dangle the other.
            models.UniqueConstraint(
                fields=["storage_path"],
                condition=~Q(storage_path=""),
                name="contentitem_unique_storage_path",
            ),
            models.UniqueConstraint(
                fields=["poster_path"],
                condition=~Q(poster_path=""),
                name="contentitem_unique_poster_path",
            ),
            models.UniqueConstraint(
                fields=["captions_path"],
                condition=~Q(captions_path=""),
                name="contentitem_unique_captions_path",
            ),
        ]
        indexes = [
            models.Index(fields=["topic", "content_type"]),
            # A topic's lessons in order (the studio page, the admin within a topic): an index,
            # not a sort of the table.
            models.Index(fields=["topic", "position", "id"], name="contentitem_topic_lesson"),
            # The admin's list of every video, newest first.
            models.Index(fields=["-created_at", "-id"], name="contentitem_newest"),
        ]
        permissions = [("regenerate_contentitem", "Can regenerate videos and retry storage")]

    def __str__(self) -> str:
        return f"{self.get_content_type_display()} #{self.pk} ({self.topic.title})"

    def save(self, *args, **kwargs):
        # Every row has a title: without one given, the default rule's, from the script.
        if not self.title:
            data = self.content_data if isinstance(self.content_data, dict) else {}
            self.title = default_title(data.get("script", ""))
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "title"}
        super().save(*args, **kwargs)


class GenerationRequest(models.Model):
    """One submitted generate form, by the token it was rendered with: a second post of the
    same form (a double click, a resubmit after a timeout) finds it and queues nothing.

    Written in the same transaction as the items it created, so the token is never recorded
    without its items, nor the items without their token."""

    token = models.UUIDField(unique=True)
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, related_name="generation_requests")
    item_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Generation request {self.token} ({len(self.item_ids)} item(s))"
