"""Input and output serializers of the integrations API."""

from __future__ import annotations

from rest_framework import serializers

from integrations.models import WebhookDelivery, WebhookEndpoint, WebhookEvent


class WebhookSerializer(serializers.ModelSerializer):
    events = serializers.ListField(child=serializers.ChoiceField(choices=WebhookEvent.choices))
    secret_hint = serializers.SerializerMethodField(help_text="The secret's last characters (it is shown once).")
    last_delivery = serializers.SerializerMethodField()

    class Meta:
        model = WebhookEndpoint
        fields: tuple[str, ...] = (
            "id",
            "url",
            "description",
            "events",
            "is_active",
            "disabled_reason",
            "consecutive_failures",
            "secret_hint",
            "last_delivery",
            "created_at",
            "updated_at",
        )

    def get_secret_hint(self, endpoint: WebhookEndpoint) -> str:
        return f"whsec_\u2026{endpoint.secret_hint}"

    def get_last_delivery(self, endpoint: WebhookEndpoint) -> dict | None:
        delivery = endpoint.last_delivery
        return None if delivery is None else DeliverySummarySerializer(delivery).data


class WebhookCreatedSerializer(WebhookSerializer):
    secret = serializers.CharField(
        help_text="The signing secret. Shown this once: store it now (rotate-secret makes a new one)."
    )

    class Meta(WebhookSerializer.Meta):
        fields = (*WebhookSerializer.Meta.fields, "secret")


class WebhookInput(serializers.Serializer):
    url = serializers.CharField(max_length=500, help_text="http(s) URL that receives the POSTs.")
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices),
        min_length=1,
        help_text="Event types to receive.",
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class WebhookUpdateInput(serializers.Serializer):
    url = serializers.CharField(max_length=500, required=False)
    events = serializers.ListField(
        child=serializers.ChoiceField(choices=WebhookEvent.choices), min_length=1, required=False
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    is_active = serializers.BooleanField(required=False, help_text="Switch the endpoint off or on again.")


class SecretSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The new signing secret, shown this once.")


class DeliverySummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = WebhookDelivery
        fields: tuple[str, ...] = (
            "id",
            "event_id",
            "event_type",
            "job",
            "status",
            "attempts",
            "response_status",
            "error",
            "created_at",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
        )


class DeliverySerializer(DeliverySummarySerializer):
    class Meta(DeliverySummarySerializer.Meta):
        fields = (*DeliverySummarySerializer.Meta.fields, "duration_ms", "response_body", "payload")
