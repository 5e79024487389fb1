"""Template helpers: plain numbers, status badges, on-chain units. (Descriptions are rendered
when saved, ``Dataset.description_html``, never in a template.)"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import template

from chain.units import units_to_delta, units_to_epsilon, units_to_price
from marketplace.models import Dataset

register = template.Library()


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
def as_decimal(value: Any) -> Any:
    """A decimal kept as text (order receipts): "4.875000" -> Decimal; anything else passes through."""
    try:
        return Decimal(str(value))
    except (ArithmeticError, ValueError):
        return value


@register.filter
def unix_time(value: Any) -> datetime | str:
    """Unix seconds (an order's on-chain deadline) -> an aware datetime, for ``|date``."""
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return ""
