"""Admin for generation jobs and webhook events (read-only: services own every write)."""

from django.contrib import admin

from avatars.models import VideoJob, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(VideoJob)
class VideoJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "content_item", "state", "attempts", "provider_video_id",
                    "queued_at", "finished_at", "last_error")  # fmt: skip
    list_filter = ("state", "provider")
    search_fields = ("provider_video_id", "content_item__topic__title")
    list_select_related = ("content_item__topic",)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("event_type", "provider_video_id", "received_at")
