from django import template

from integrations.models import WebhookEvent

register = template.Library()


@register.simple_tag
def webhook_event_choices() -> list[tuple[str, str]]:
    """The events a webhook can subscribe to, as (value, label)."""
    return list(WebhookEvent.choices)
