"""Admin for topics and content items: browse, preview, regenerate, retry storage, delete.

Writes go through services (avatars.services, topics.services); actions that spend a render
credit or delete a file ask first, on an intermediate page."""

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.views.main import ChangeList
from django.db.models import Count, Prefetch, Q
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from avatars import services as generation
from avatars.errors import GENERATION_ERRORS
from avatars.models import VideoJob
from studio.cards import legacy_link_blocked, video_statuses
from studio.permissions import CHANGE_VIDEO, DELETE_VIDEO, REGENERATE
from topics.models import ContentItem, Topic
from topics.objects import CAPTIONS_FIELDS, POSTER_FIELDS, stored_objects
from topics.selectors import poster_url, video_view
from topics.services import content_item_delete, content_item_rename, topic_delete
from videostore.storage import MEASURED_FIELDS, STORAGE_METADATA_FIELDS, VideoStorage

admin.site.site_header = "Content Studio admin"
admin.site.site_title = "Content Studio admin"
admin.site.index_title = "Topics, videos and jobs"

#: The storage metadata of a stored video, then what its bytes told us (one list each).
METADATA_FIELDS = (*STORAGE_METADATA_FIELDS, *MEASURED_FIELDS, *POSTER_FIELDS, *CAPTIONS_FIELDS)
CONFIRM_TEMPLATE = "admin/topics/contentitem/confirm_action.html"


#: The changelist's filter on one topic (the topic admin links its lessons with it).
TOPIC_LOOKUP = "topic__id__exact"


class ContentItemInline(admin.TabularInline):
    """A topic's lessons, in their order (the model's ordering: position, then id)."""

    model = ContentItem
    extra = 0
    fields = ("position", "title", "content_type", "status", "storage_path", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    """The language field carries validate_language_tag (the model's rule), as every door."""

    list_display = ("title", "language", "item_count", "updated_at")
    search_fields = ("title",)
    list_filter = ("language",)
    inlines = [ContentItemInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(item_count=Count("content_items"))

    @admin.display(description="items", ordering="item_count")
    def item_count(self, topic):
        url = reverse("admin:topics_contentitem_changelist") + f"?{TOPIC_LOOKUP}={topic.pk}"
        return format_html('<a href="{}">{}</a>', url, topic.item_count)

    def get_deleted_objects(self, objs, request):
        """A topic's items go through the delete service (their files after commit) and their
        jobs with them: the items need the item delete permission, the jobs none of their own."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        cascaded = {str(VideoJob._meta.verbose_name)}
        if request.user.has_perm(DELETE_VIDEO):
            cascaded.add(str(ContentItem._meta.verbose_name))
        return deleted, counts, {p for p in perms_needed if p not in cascaded}, protected

    def delete_model(self, request, obj):
        topic_delete(topic=obj)

    def delete_queryset(self, request, queryset):
        for topic in queryset:
            topic_delete(topic=topic)


class YesNoFilter(admin.SimpleListFilter):
    """A yes/no filter on one condition: subclasses set `condition` (a Q) and the labels of
    its two answers."""

    answers = ("Yes", "No")
    condition: Q

    def lookups(self, request, model_admin):
        return [("yes", self.answers[0]), ("no", self.answers[1])]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(self.condition)
        if self.value() == "no":
            return queryset.exclude(self.condition)
        return queryset


class StoredFilter(YesNoFilter):
    title = "stored"
    parameter_name = "stored"
    answers = ("In our storage", "Not stored")

    condition = ~Q(storage_path="")


class FallbackFilter(YesNoFilter):
    title = "fallback"
    parameter_name = "fallback"
    answers = ("Provider URL only (fallback)", "No")

    condition = Q(status=ContentItem.Status.NEEDS_STORAGE)


def with_poster_urls(queryset) -> list[ContentItem]:
    """The items, each with `poster_url` (its thumbnail on a confirmation page) and `files`
    (how many stored objects go with it)."""
    storage = VideoStorage()
    items = list(queryset)
    for item in items:
        item.poster_url = poster_url(item, storage)
        item.files = len(stored_objects(item))
    return items


def confirm_page(model_admin, request, queryset, *, action: str, title: str, question: str,
                 confirm_label: str, show_files: bool = False) -> TemplateResponse:  # fmt: skip
    """An intermediate page: the selected items, the question, a button that posts again."""
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "question": question,
        "confirm_label": confirm_label,
        "queryset": with_poster_urls(queryset) if show_files else queryset,
        "action": action,
        "show_files": show_files,
        "opts": model_admin.model._meta,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, CONFIRM_TEMPLATE, context)


class ContentItemChangeList(ChangeList):
    """Derives the one status of each row on the page at once (the studio's derivation): one
    query for the latest jobs (prefetched), one for the queue positions, whatever the rows."""

    def get_results(self, request):
        super().get_results(request)
        statuses = video_statuses(self.result_list)
        for item in self.result_list:
            item.derived_status = statuses[item.pk]


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):
    """Videos, newest first; one topic's (`?topic__id__exact=N`, the topic list's link) in
    lesson order. Only the title is edited here (through the rename service); other writes
    are the actions."""

    list_display = ("title", "__str__", "position", "video_status", "file_name", "created_at")
    list_filter = ("content_type", "status", "topic__language", FallbackFilter, StoredFilter)
    search_fields = ("title", "topic__title", "content_data__videoId", "content_data__script",
                     "storage_path")  # fmt: skip
    list_select_related = ("topic",)
    list_per_page = 20
    show_full_result_count = False  # no COUNT(*) over the whole table on every page
    fields = ("title", "topic", "position", "content_type", "status", "video_preview",
              "storage_metadata", "script", "storage_path", "created_at", "updated_at")  # fmt: skip
    readonly_fields = tuple(field for field in fields if field != "title")
    actions = ["regenerate_video", "retry_storage", "delete_with_file"]

    def get_ordering(self, request):
        if TOPIC_LOOKUP in request.GET:  # one topic: its lessons, first lesson first
            return ("position", "id")
        return ("-created_at", "-id")

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        # Only the newest job of each item: the one its status is derived from.
        latest_job = VideoJob.objects.order_by("-queued_at", "-id")[:1]
        items = super().get_queryset(request)
        return items.prefetch_related(Prefetch("video_jobs", queryset=latest_job, to_attr="jobs"))

    def get_changelist(self, request, **kwargs):
        return ContentItemChangeList

    @admin.display(description="status", ordering="status")
    def video_status(self, item):
        status = getattr(item, "derived_status", None)
        if status is None:  # not a changelist row
            status = video_statuses([item])[item.pk]
        label = status.label
        if status.step and status.step != label:  # regenerating: the running step too
            label = f"{label} ({status.step})"
        return format_html('<span title="{}">{}</span>', status.next_step, label)

    def has_change_permission(self, request, obj=None):
        # The title only (save_model); content_data is never edited by hand.
        return request.user.has_perm(CHANGE_VIDEO)

    def save_model(self, request, obj, form, change):
        content_item_rename(content_item=obj, title=form.cleaned_data["title"])

    def has_delete_permission(self, request, obj=None):
        return False  # "delete with file" instead: the object must go too

    def has_regenerate_permission(self, request):
        return request.user.has_perm(REGENERATE)

    def has_delete_with_file_permission(self, request):
        return request.user.has_perm(DELETE_VIDEO)

    @admin.display(description="poster", ordering="storage_path")
    def file_name(self, item):
        """The video's thumbnail (its poster), not its storage path; the path on hover."""
        if not item.storage_path:
            return "—"
        url = poster_url(item)
        if not url:
            return format_html('<span title="{}">no poster yet</span>', item.storage_path)
        return format_html('<img src="{}" alt="" title="{}" loading="lazy" width="96" '
                           'height="54" style="object-fit:cover;border-radius:4px" '
                           'class="thumbnail">', url, item.storage_path)  # fmt: skip

    @admin.display(description="video")
    def video_preview(self, item):
        video = video_view(item)
        if video is None:
            return "—"
        if legacy_link_blocked(item):
            return "Not stored yet (legacy link on a host outside AVATAR_DOWNLOAD_ALLOWED_HOSTS)"
        track = format_html(
            '<track kind="captions" src="{}" srclang="{}" label="Captions ({})" default>',
            reverse("studio:video-captions", args=[item.topic_id, item.pk]),
            video.captions_language, video.captions_language,
        ) if video.captions_language else ""  # fmt: skip
        return format_html(
            '<video controls preload="none" src="{}" poster="{}" style="max-width:480px">{}'
            "</video>",
            video.play_url, video.poster_url, track,
        )  # fmt: skip

    @admin.display(description="storage metadata")
    def storage_metadata(self, item):
        rows = [(k, item.content_data.get(k)) for k in METADATA_FIELDS if k in item.content_data]
        if not rows:
            return "not stored"
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", rows))

    @admin.display(description="script")
    def script(self, item):
        return item.content_data.get("script", "")

    @admin.action(description="Regenerate video (uses a render credit each)",
                  permissions=["regenerate"])  # fmt: skip
    def regenerate_video(self, request, queryset):
        videos = queryset.filter(content_type=ContentItem.ContentType.AVATAR_VIDEO)
        if request.POST.get("post") != "yes":
            count = videos.count()
            return confirm_page(
                self, request, videos, action="regenerate_video",
                title="Regenerate videos?",
                question=f"Render {count} video(s) again from their scripts? Each uses one "
                "render credit at the provider; the current videos stay until the new ones "
                "are stored.",
                confirm_label=f"Yes, regenerate {count} video(s)",
            )  # fmt: skip
        queued = 0
        for item in videos.select_related("topic"):
            try:
                generation.avatar_video_regenerate(content_item=item)
                queued += 1
            except GENERATION_ERRORS as error:
                self.message_user(request, f"{item}: {error}", messages.ERROR)
        self.message_user(request, f"Regeneration queued for {queued} video(s).")
        return None

    @admin.action(description="Retry storage (copy the provider video)", permissions=["regenerate"])
    def retry_storage(self, request, queryset):
        queued = sum(generation.avatar_video_retry_storage(content_item=item) for item in queryset)
        skipped = len(queryset) - queued
        if queued:
            self.message_user(request, f"Storage retry queued for {queued} item(s).")
        if skipped:
            self.message_user(
                request,
                f"Nothing to retry for {skipped} item(s): only videos waiting for storage "
                "(fallback, playing the provider's link) can be copied again.",
                messages.WARNING,
            )

    @admin.action(description="Delete with file", permissions=["delete_with_file"])
    def delete_with_file(self, request, queryset):
        if request.POST.get("post") != "yes":
            count = queryset.count()
            return confirm_page(
                self, request, queryset, action="delete_with_file",
                title="Delete videos and their files?",
                question=f"Delete {count} item(s)? Their files are deleted from storage; "
                "this cannot be undone.",
                confirm_label=f"Yes, delete {count} item(s) and their files",
                show_files=True,
            )  # fmt: skip
        count = 0
        for item in queryset:
            content_item_delete(content_item=item)
            count += 1
        self.message_user(request, f"Deleted {count} item(s); their files go after commit.")
        return None
