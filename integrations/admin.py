"""Django admin for webhooks: read-mostly. Secrets are never shown; endpoints change through
the webhooks service (the actions below)."""

from django.contrib import admin

from integrations.models import WebhookDelivery, WebhookEndpoint
from integrations.services import webhooks as webhook_services


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "url", "is_active", "consecutive_failures", "created_at")
    list_filter = ("is_active",)
    search_fields = ("url", "owner__username", "description")
    readonly_fields = (
        "owner",
        "url",
        "events",
        "secret_hint",
        "is_active",
        "disabled_reason",
        "consecutive_failures",
        "created_at",
        "updated_at",
    )
    exclude = ("secret_sealed",)
    actions = ["switch_off", "switch_on"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Switch off the selected webhooks")
    def switch_off(self, request, queryset):
        for endpoint in queryset:
            webhook_services.webhook_update(endpoint=endpoint, is_active=False)

    @admin.action(description="Switch on the selected webhooks")
    def switch_on(self, request, queryset):
        for endpoint in queryset:
            webhook_services.webhook_update(endpoint=endpoint, is_active=True)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ("id", "endpoint", "event_type", "job", "status", "attempts", "response_status", "created_at")
    list_filter = ("status", "event_type")
    search_fields = ("event_id",)
    readonly_fields = [f.name for f in WebhookDelivery._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
