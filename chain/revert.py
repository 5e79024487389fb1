"""Turn revert data from the contracts into a sentence a user can act on."""

from __future__ import annotations

import functools
import re
from typing import Any

from eth_abi import decode
from eth_utils import keccak

from chain.artifacts import load_artifact
from chain.units import units_to_delta, units_to_epsilon, units_to_price

ARTIFACTS = ("DataFactory", "Datatoken", "DataNFT", "MockStablecoin")
_OZ_ERRORS = {
    # OpenZeppelin 5 ERC-20 / EIP-2612 errors the payment token raises.
    "ERC20InsufficientBalance": "The wallet does not hold enough of the payment token.",
    "ERC20InsufficientAllowance": "The payment token allowance is too small.",
    "ERC2612ExpiredSignature": "The permit signature has expired.",
    "ERC2612InvalidSigner": "The permit was not signed by the paying wallet.",
}


# Errors whose sentence needs no argument.
_PLAIN = {
    "OrderingClosed": "Ordering of this dataset is closed on chain (it opens when a moderator lists it).",
    "TicketInvalid": (
        "The order ticket is not valid: it was not signed by the marketplace's operator for this wallet, "
        "dataset and request. Ask for a new quote."
    ),
    "ZeroEpsilon": "An order must ask for some epsilon.",
    "NotFree": "This dataset is not free: pay for it with buyAndOrder.",
    "RenounceDisabled": "Renouncing the factory's ownership is disabled (it would lock the marketplace).",
    "PaymentTokenNotAllowed": "The factory does not accept that payment token (it is not on its allow-list).",
    "InvalidCaps": "The budget caps are inconsistent (per job 0 or above the total).",
    "NothingPending": "There is no pending change to apply.",
    "ZeroAddress": "The zero address is not allowed here.",
    "NothingToSweep": "There is nothing to sweep: the contract holds no stray balance of that token.",
}
# Errors whose sentence names an argument (orders by id, times as unix seconds).
_WITH_ID = {
    "TicketExpired": "The order ticket expired (unix time {expiry}) before the order was mined; ask for a new quote.",
    "TicketUsed": "This order ticket (nonce {nonce}) was already used; ask for a new quote.",
    "OrderExpired": (
        "Order {orderId} passed its deadline (unix time {deadline}) unsettled: the operator can no longer "
        "settle it, and its buyer can reclaim the payment."
    ),
    "OrderNotExpired": "Order {orderId} can be reclaimed only after its deadline (unix time {deadline}).",
    "OrderMismatch": "Order {orderId} on chain is not the order presented (another consumer, amount or deadline).",
    "OrderNotOpen": "Order {orderId} is already settled on chain (status {status}).",
    "NotOperator": "Only the marketplace's operator may do this ({caller} is not it).",
    "NothingToWithdraw": "{account} has nothing to withdraw from this datatoken.",
    "TooEarly": "The change can be applied only from unix time {eta}.",
    "FeeTooHigh": "A fee of {bps} basis points is above the 1,000 (10 %) maximum.",
    "InvalidOrderWindow": "The order window ({window} seconds) must be between 1 hour and 365 days.",
    "InvalidParameterDelay": "The parameter delay ({delay} seconds) must be between 1 and 30 days.",
}


def _readable(value: Any) -> Any:
    return "0x" + bytes(value).hex() if isinstance(value, bytes | bytearray) else value


@functools.cache
def _errors() -> dict[bytes, tuple[str, list[str], list[str]]]:
    table: dict[bytes, tuple[str, list[str], list[str]]] = {}
    for name in ARTIFACTS:
        for item in load_artifact(name)["abi"]:
            if item.get("type") != "error":
                continue
            types = [i["type"] for i in item["inputs"]]
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            table[selector] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return table


def decode_revert(data: Any) -> tuple[str, dict[str, Any]] | None:
    """(error name, arguments) for custom-error revert data, or None when it is not one of ours."""
    if isinstance(data, str):
        match = re.search(r"0x[0-9a-fA-F]{8,}", data)
        if not match:
            return None
        raw = bytes.fromhex(match.group(0)[2:])
    elif isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        return None
    entry = _errors().get(raw[:4])
    if entry is None:
        return None
    name, arg_names, types = entry
    try:
        values = decode(types, raw[4:])
    except Exception:
        return name, {}
    return name, dict(zip(arg_names, values, strict=True))


def revert_message(exc_or_data: Any) -> str:
    """A readable message for a failed call or estimate (custom errors spelled out)."""
    data = getattr(exc_or_data, "data", None) or getattr(exc_or_data, "message", None) or str(exc_or_data)
    decoded = decode_revert(data) or decode_revert(str(exc_or_data))
    if decoded is None:
        return str(exc_or_data)
    name, args = decoded
    if name in _OZ_ERRORS:
        return _OZ_ERRORS[name]
    if name == "EpsilonCapExceeded":
        return (
            f"The dataset's privacy budget has epsilon {units_to_epsilon(args['left'])} left; "
            f"this order asks for {units_to_epsilon(args['requested'])}."
        )
    if name == "EpsilonPerJobCapExceeded":
        cap, asked = units_to_epsilon(args["cap"]), units_to_epsilon(args["requested"])
        return f"At most epsilon {cap} per job; this order asks {asked}."
    if name == "DeltaCapExceeded":
        return (
            f"The dataset's cumulative delta budget has {units_to_delta(args['left']):e} left; "
            f"this order asks for {units_to_delta(args['requested']):e}."
        )
    if name == "DeltaPerJobCapExceeded":
        delta_cap, delta_asked = units_to_delta(args["cap"]), units_to_delta(args["requested"])
        return f"At most delta {delta_cap:e} per job; this order asks {delta_asked:e}."
    if name == "PriceMismatch":
        return (
            f"The price on chain is now {units_to_price(args['price'])}, not the "
            f"{units_to_price(args['ticketPrice'])} of your order ticket; ask for a new quote."
        )
    if name in _PLAIN:
        return _PLAIN[name]
    if name in _WITH_ID:
        return _WITH_ID[name].format(**{k: _readable(v) for k, v in args.items()})
    rendered = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"The contract refused: {name}({rendered})."
