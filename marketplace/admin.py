"""Django admin for every model. Listing status and files are read-only here: state changes go
through the moderation service (the admin actions below call it), never a raw save."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import URLPattern, path
from rest_framework.authtoken.admin import TokenAdmin as BaseTokenAdmin
from rest_framework.authtoken.models import Token, TokenProxy

from common.errors import DomainError
from marketplace.models import Dataset, ModerationLogEntry, Notification, Report, Tag, User
from marketplace.services.moderation import dataset_transition

TOKEN_PREFIX_CHARS = 8


def token_prefix(key: str | None) -> str:
    """Enough of an API token to tell two apart, never enough to use one."""
    return f"{key[:TOKEN_PREFIX_CHARS]}…" if key else "—"


@admin.action(description="Revoke the API tokens of selected users")
def revoke_api_tokens(modeladmin: admin.ModelAdmin[User], request: HttpRequest, queryset: QuerySet[User]) -> None:
    deleted, _ = Token.objects.filter(user__in=queryset).delete()
    modeladmin.message_user(request, f"Revoked {deleted} API token(s).", messages.SUCCESS)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (
        *(BaseUserAdmin.fieldsets or ()),
        ("Profile", {"fields": ("organisation", "bio", "email_verified_at", "api_token")}),
    )
    readonly_fields = ("email_verified_at", "api_token")
    list_display = ("username", "email", "organisation", "is_staff", "date_joined")
    actions = [revoke_api_tokens]

    @admin.display(description="API token")
    def api_token(self, obj: User) -> str:
        return token_prefix(Token.objects.filter(user=obj).values_list("key", flat=True).first())


# DRF's token admin lists every key in full, and a token's primary key is its key, so any change,
# history or delete page would print it in its links. Here staff see a prefix, in a list without
# links, search by username only; revoking is the user admin's action above.
admin.site.unregister(TokenProxy)


@admin.register(TokenProxy)
class TokenAdmin(BaseTokenAdmin):
    list_display = ("prefix", "user", "created")
    list_display_links = None
    search_fields = ("user__username",)

    @admin.display(description="Token")
    def prefix(self, obj: Token) -> str:
        return token_prefix(obj.key)

    def get_urls(self) -> list[URLPattern]:
        name = f"{self.opts.app_label}_{self.opts.model_name}_changelist"
        return [path("", self.admin_site.admin_view(self.changelist_view), name=name)]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Token | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Token | None = None) -> bool:
        return False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


# A string: ModelAdmin is generic in the stubs only.
_DatasetAction: TypeAlias = "Callable[[admin.ModelAdmin[Dataset], HttpRequest, QuerySet[Dataset]], None]"


def _moderate(action: str) -> _DatasetAction:
    @admin.action(description=f"{action.capitalize()} selected datasets")
    def run(modeladmin: admin.ModelAdmin[Dataset], request: HttpRequest, queryset: QuerySet[Dataset]) -> None:
        actor = request.user
        if not isinstance(actor, User):  # the admin site lets only signed-in staff reach an action
            raise PermissionDenied
        done = 0
        for dataset in queryset:
            try:
                dataset_transition(
                    dataset=dataset, actor=actor, action=action, reason=f"{action} from the Django admin"
                )
                done += 1
            except DomainError as exc:
                modeladmin.message_user(request, f"#{dataset.pk}: {exc.detail}", messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{action}: {done} dataset(s).", messages.SUCCESS)

    run.__name__ = f"action_{action}"
    return run


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "owner", "status", "price", "price_token", "validation", "created_at")
    list_filter = ("status", "licence", "file_format", "validation")
    search_fields = ("title", "owner__username")
    readonly_fields = (
        "status",
        "listed_at",
        # Rendered into description_html by the service when saved; an edit here would not be.
        "description",
        "file_format",
        "original_filename",
        "storage_name",
        "file_size",
        "file_sha256",
        "commitment",
        "size_bucket",
        "validation",
        "validation_detail",
        "row_count",
        "schema_report",
        "public_row_count",
        "proposed_schema",
        "schema_confirmed_at",
        "mock_storage_name",
        "created_at",
        "updated_at",
    )
    filter_horizontal = ("tags",)
    actions = [_moderate("approve"), _moderate("reject"), _moderate("delist"), _moderate("relist")]


@admin.register(Report)
class ReportAdmin(admin.ModelAdmin):
    list_display = ("id", "dataset", "reporter", "status", "created_at")
    list_filter = ("status",)
    readonly_fields = ("dataset", "reporter", "reason", "created_at")


@admin.register(ModerationLogEntry)
class ModerationLogEntryAdmin(admin.ModelAdmin):
    list_display = ("created_at", "dataset", "actor", "action", "from_status", "to_status")
    list_filter = ("action",)

    def has_change_permission(self, request: HttpRequest, obj: ModerationLogEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModerationLogEntry | None = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """The e-mails sent (one per key); read-only, a record of what went out."""

    list_display = ("created_at", "key", "subject", "sent_at")
    search_fields = ("key", "subject")
    readonly_fields = ("key", "recipients", "subject", "created_at", "sent_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
