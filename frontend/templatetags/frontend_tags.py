"""Template helpers: safe Markdown, plain numbers, status badges."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.safestring import mark_safe

from marketplace.markdown import markdown_render
from marketplace.models import Dataset

register = template.Library()


@register.filter(name="markdown")
def markdown(text: str) -> str:
    # markdown_render sanitises with an allow-list (nh3), so its output is safe to mark as such.
    return mark_safe(markdown_render(text or ""))  # noqa: S308


@register.filter
def plain(value) -> str:
    """A number without trailing zeros or exponent noise: 5.000000 -> 5, 0.50 -> 0.5, 1e-05 -> 0.00001."""
    if value is None or value == "":
        return ""
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text
    return str(value)


@register.filter
def status_label(value: str) -> str:
    """'pending_review' -> 'Pending review'; unknown values pass through."""
    try:
        return Dataset.Status(value).label
    except ValueError:
        return value
