"""Admin for generation jobs and webhook events (read-only: services own every write), and
django-q's own tables for superusers only (operators' plumbing, not authors' content)."""

from importlib import import_module

from django.apps import apps
from django.contrib import admin
from django.db.models import Count
from django.utils import timezone

from avatars.models import VideoJob, WebhookEvent
from studio.admin.videostore import ReadOnlyAdmin
from studio.status import format_elapsed, step_started_at
from videostore.clock import db_now

State = VideoJob.State


class StalledFilter(admin.SimpleListFilter):
    """Active jobs whose lease ran out: their worker died; another takes them over."""

    title = "stalled"
    parameter_name = "stalled"

    def lookups(self, request, model_admin):
        return [("yes", "Stalled (lease expired)")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(state__in=VideoJob.ACTIVE_STATES, lease_expires_at__lt=db_now())
        return queryset


@admin.register(VideoJob)
class VideoJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "content_item", "state", "time_in_state", "attempts", "claimed_by",
                    "lease_expires_at", "provider", "short_error")  # fmt: skip
    list_filter = (StalledFilter, "state", "provider")
    search_fields = ("provider_video_id", "content_item__topic__title", "claimed_by")
    list_select_related = ("content_item__topic",)
    list_per_page = 50
    show_full_result_count = False

    @admin.display(description="time in state")
    def time_in_state(self, job):
        started = step_started_at(job)
        if job.state in VideoJob.TERMINAL_STATES:
            started = job.finished_at or started
        return format_elapsed((timezone.now() - started).total_seconds()) if started else "—"

    @admin.display(description="last error")
    def short_error(self, job):
        error = job.last_error or ""
        return error if len(error) <= 80 else f"{error[:79]}…"

    def changelist_view(self, request, extra_context=None):
        """The header counts the jobs per state (one GROUP BY over the state index)."""
        rows = VideoJob.objects.order_by().values("state").annotate(count=Count("id"))
        counts = {row["state"]: row["count"] for row in rows}
        state_counts = [(label, counts.get(value, 0), value) for value, label in State.choices]
        stalled = VideoJob.objects.filter(
            state__in=VideoJob.ACTIVE_STATES, lease_expires_at__lt=db_now()
        ).count()
        extra = {"state_counts": state_counts, "stalled_count": stalled, **(extra_context or {})}
        return super().changelist_view(request, extra_context=extra)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    list_display = ("event_type", "provider_video_id", "received_at")


def _superusers_only(model_admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    class SuperusersOnly(model_admin_class):
        def has_module_permission(self, request):
            return request.user.is_superuser

        def has_view_permission(self, request, obj=None):
            return request.user.is_superuser

        def has_add_permission(self, request, *args):
            return request.user.is_superuser and super().has_add_permission(request, *args)

        def has_change_permission(self, request, obj=None):
            return request.user.is_superuser and super().has_change_permission(request, obj)

        def has_delete_permission(self, request, obj=None):
            return request.user.is_superuser and super().has_delete_permission(request, obj)

    SuperusersOnly.__name__ = f"SuperusersOnly{model_admin_class.__name__}"
    return SuperusersOnly


# Import django_q's admin module now (whatever the INSTALLED_APPS order), then wrap what it did.
import_module("django_q.admin")
for model in apps.get_app_config("django_q").get_models():
    if admin.site.is_registered(model):
        model_admin = admin.site.get_model_admin(model)
        admin.site.unregister(model)
        admin.site.register(model, _superusers_only(type(model_admin)))
