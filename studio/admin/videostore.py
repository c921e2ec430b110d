"""Admin for the upload ledger (read-only: the ledger's services own every write)."""

from django.contrib import admin

from videostore.models import UploadLedgerEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records that services write: operators read them, nobody edits them by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(UploadLedgerEntry)
class UploadLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("storage_path", "intent", "owner", "lease_expires_at", "attempts",
                    "last_error", "created_at")  # fmt: skip
    list_filter = ("intent",)
    search_fields = ("storage_path",)
