"""Read-only admin views of the evidence: administrators can look, nobody can change."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from archive.models import Checkpoint, LedgerEntry, VerificationRun


class ReadOnlyAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ["seq", "kind", "sealed_at", "leaf_hash_hex"]
    list_filter = ["kind"]
    show_full_result_count = False  # counting millions of rows on every page is slow

    @admin.display(description="leaf hash")
    def leaf_hash_hex(self, entry: LedgerEntry) -> str:
        return bytes(entry.leaf_hash).hex()


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ["tree_size", "created_at"]
    readonly_fields = ["tree_size", "created_at", "note"]
    exclude = ["root"]


@admin.register(VerificationRun)
class VerificationRunAdmin(ReadOnlyAdmin):
    list_display = ["finished_at", "intact", "entries", "checkpoints", "first_bad_seq", "trigger"]
    list_filter = ["intact", "trigger"]
