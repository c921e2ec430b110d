"""Admin for topics and content items: browse, preview, regenerate, retry storage, delete."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils.html import format_html, format_html_join

from avatars.errors import GENERATION_ERRORS
from avatars.jobs import request_avatar_video, request_storage_retry
from topics.models import ContentItem, Topic
from topics.selectors import video_view
from topics.services import delete_content_item

METADATA_FIELDS = ("fileUrl", "fileName", "fileSize", "fileType", "storagePath", "uploadedAt",
                   "checksum", "duration_seconds", "width", "height")  # fmt: skip


class ContentItemInline(admin.TabularInline):
    model = ContentItem
    extra = 0
    fields = ("content_type", "status", "storage_path", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("title", "language", "updated_at")
    search_fields = ("title",)
    list_filter = ("language",)
    inlines = [ContentItemInline]


class StoredFilter(admin.SimpleListFilter):
    title = "stored"
    parameter_name = "stored"

    def lookups(self, request, model_admin):
        return [("yes", "In our storage"), ("no", "Not stored")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(storage_path="")
        if self.value() == "no":
            return queryset.filter(storage_path="")
        return queryset


class FallbackFilter(admin.SimpleListFilter):
    title = "fallback"
    parameter_name = "fallback"

    def lookups(self, request, model_admin):
        return [("yes", "Provider URL only (fallback)"), ("no", "No")]

    def queryset(self, request, queryset):
        fallback = Q(status=ContentItem.Status.NEEDS_STORAGE)
        if self.value() == "yes":
            return queryset.filter(fallback)
        if self.value() == "no":
            return queryset.exclude(fallback)
        return queryset


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):
    list_display = ("id", "topic", "content_type", "status", "storage_path", "created_at")
    list_filter = ("content_type", "status", "topic__language", FallbackFilter, StoredFilter)
    search_fields = ("topic__title", "content_data__videoId")
    list_select_related = ("topic",)
    list_per_page = 20
    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    fields = ("topic", "content_type", "status", "video_preview", "storage_metadata",
              "script", "storage_path", "created_at", "updated_at")  # fmt: skip
    readonly_fields = fields
    actions = ["regenerate_video", "retry_storage", "delete_with_file"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False  # writes go through the actions (services), never raw content_data

    def has_delete_permission(self, request, obj=None):
        return False  # "delete with file" instead: the object must go too

    def has_regenerate_permission(self, request):
        return request.user.has_perm("topics.regenerate_contentitem")

    def has_delete_with_file_permission(self, request):
        return request.user.has_perm("topics.delete_contentitem")

    def get_actions(self, request):
        actions = super().get_actions(request)
        if not self.has_delete_with_file_permission(request):
            actions.pop("delete_with_file", None)
        return actions

    @admin.display(description="video")
    def video_preview(self, item):
        video = video_view(item)
        if video is None:
            return "—"
        return format_html(
            '<video controls preload="metadata" src="{}" style="max-width:480px"></video>',
            video.play_url,
        )

    @admin.display(description="storage metadata")
    def storage_metadata(self, item):
        rows = [(k, item.content_data.get(k)) for k in METADATA_FIELDS if k in item.content_data]
        if not rows:
            return "not stored"
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))

    @admin.display(description="script")
    def script(self, item):
        return item.content_data.get("script", "")

    @admin.action(description="Regenerate video", permissions=["regenerate"])
    def regenerate_video(self, request, queryset):
        queued = 0
        for item in queryset.filter(content_type=ContentItem.ContentType.AVATAR_VIDEO):
            script = item.content_data.get("script", "")
            try:
                request_avatar_video(topic=item.topic, script=script, content_item=item)
                queued += 1
            except GENERATION_ERRORS as error:
                self.message_user(request, f"Item {item.pk}: {error}", messages.ERROR)
        self.message_user(request, f"Regeneration queued for {queued} video(s).")

    @admin.action(description="Retry storage (copy the provider video)", permissions=["regenerate"])
    def retry_storage(self, request, queryset):
        queued = 0
        for item in queryset.filter(status=ContentItem.Status.NEEDS_STORAGE):
            request_storage_retry(content_item=item)
            queued += 1
        self.message_user(request, f"Storage retry queued for {queued} item(s).")

    @admin.action(description="Delete with file", permissions=["delete_with_file"])
    def delete_with_file(self, request, queryset):
        count = 0
        for item in queryset:
            delete_content_item(content_item=item)
            count += 1
        self.message_user(request, f"Deleted {count} item(s); their files go after commit.")
