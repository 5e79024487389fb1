"""Turn revert data from the contracts into a sentence a user can act on."""

from __future__ import annotations

import functools
import re
from typing import Any

from eth_abi import decode
from eth_utils import keccak

from chain.artifacts import load_artifact
from chain.units import units_to_epsilon

ARTIFACTS = ("DataFactory", "Datatoken", "DataNFT", "MockStablecoin")
_OZ_ERRORS = {
    # OpenZeppelin 5 ERC-20 / EIP-2612 errors the payment token raises.
    "ERC20InsufficientBalance": "The wallet does not hold enough of the payment token.",
    "ERC20InsufficientAllowance": "The payment token allowance is too small.",
    "ERC2612ExpiredSignature": "The permit signature has expired.",
    "ERC2612InvalidSigner": "The permit was not signed by the paying wallet.",
}


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
    if name == "OrderingClosed":
        return "Ordering of this dataset is closed on chain."
    if name == "PriceAboveMax":
        return "The price on chain changed and is above what you agreed to pay."
    rendered = ", ".join(f"{k}={v}" for k, v in args.items())
    return f"The contract refused: {name}({rendered})."
