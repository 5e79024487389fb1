"""Template helpers: safe Markdown, plain numbers, status badges, on-chain units."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.utils.safestring import mark_safe

from chain.units import units_to_delta, units_to_epsilon, units_to_price
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


# --- chain: the contracts' integer units, shown as the marketplace's decimals (docs/chain.md) ---


@register.filter
def price_units(value) -> Decimal | str:
    """Payment-token base units -> price: 12500000 -> 12.500000 (then ``|plain``: 12.5)."""
    return "" if value is None or value == "" else units_to_price(value)


@register.filter
def epsilon_units(value) -> Decimal | str:
    """Micro-epsilon -> epsilon: 500000 -> 0.500000."""
    return "" if value is None or value == "" else units_to_epsilon(value)


@register.filter
def delta_units(value) -> float | str:
    """Atto-delta -> delta: 10**13 -> 1e-05 (then ``|plain``: 0.00001)."""
    return "" if value is None or value == "" else units_to_delta(value)


@register.filter
def as_decimal(value):
    """A decimal kept as text (order receipts): "4.875000" -> Decimal; anything else passes through."""
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError):
        return value
