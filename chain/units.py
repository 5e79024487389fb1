"""Conversions between the marketplace's decimals and the integers the contracts keep (docs/chain.md)."""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, Decimal

from common.errors import InvalidInput

PRICE_DECIMALS = 6  # the payment token (USDC and the dev stablecoin) has 6 decimals
EPSILON_UNITS = 10**6  # micro-epsilon
DELTA_UNITS = 10**18  # atto-delta


def price_to_units(price: Decimal, decimals: int = PRICE_DECIMALS) -> int:
    units = Decimal(price) * (Decimal(10) ** decimals)
    if units != units.to_integral_value():
        raise ValueError(f"{price} has more than {decimals} decimals.")
    return int(units)


def units_to_price(units: int | Decimal, decimals: int = PRICE_DECIMALS) -> Decimal:
    # A Decimal too: the models keep uint256 amounts (price, order amount) as whole DecimalFields.
    return (Decimal(int(units)) / (Decimal(10) ** decimals)).quantize(Decimal(1).scaleb(-decimals))


def epsilon_to_units(epsilon: Decimal | float | str) -> int:
    units = Decimal(str(epsilon)) * EPSILON_UNITS
    return int(units.to_integral_value(rounding=ROUND_DOWN))


def units_to_epsilon(units: int) -> Decimal:
    return (Decimal(int(units)) / EPSILON_UNITS).quantize(Decimal("0.000001"))


def delta_to_units(delta: float | Decimal | str) -> int:
    return int((Decimal(str(delta)) * DELTA_UNITS).to_integral_value(rounding=ROUND_DOWN))


def units_to_delta(units: int) -> float:
    return float(Decimal(int(units)) / DELTA_UNITS)


HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
_HASH = re.compile(HASH_PATTERN)


def hash_bytes(value: str, what: str) -> bytes:
    """32 bytes from a 0x-prefixed hex hash (transaction hash, algorithm hash...), or a clear refusal."""
    if not isinstance(value, str) or not _HASH.match(value):
        raise InvalidInput(f"{what} must be 0x followed by 64 hex digits.", code="invalid_hash")
    return bytes.fromhex(value[2:])
