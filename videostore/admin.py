"""Admin for the upload ledger (read-only: the ledger's services own every write)."""

from django.contrib import admin

from videostore.models import UploadLedgerEntry


@admin.register(UploadLedgerEntry)
class UploadLedgerEntryAdmin(admin.ModelAdmin):
    list_display = ("storage_path", "intent", "attempts", "last_error", "created_at")
    list_filter = ("intent",)
    search_fields = ("storage_path",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
