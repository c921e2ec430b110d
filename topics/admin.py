"""Admin for topics and content items."""

from django.contrib import admin

from topics.models import ContentItem, Topic


class ContentItemInline(admin.TabularInline):
    model = ContentItem
    extra = 0
    fields = ("content_type", "status", "storage_path", "created_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ("title", "language", "updated_at")
    search_fields = ("title",)
    list_filter = ("language",)
    inlines = [ContentItemInline]


@admin.register(ContentItem)
class ContentItemAdmin(admin.ModelAdmin):
    list_display = ("id", "topic", "content_type", "status", "storage_path", "created_at")
    list_filter = ("content_type", "status")
    search_fields = ("topic__title",)
    list_select_related = ("topic",)
    readonly_fields = ("storage_path", "created_at", "updated_at")
