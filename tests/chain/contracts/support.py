"""What the datatoken tests share: the hashes a receipt records, and the operator's receipt call."""

from __future__ import annotations

from eth_utils import keccak

HASHES = {
    "datasetHash": keccak(text="dataset"),
    "algorithmHash": keccak(text="algorithm"),
    "paramsHash": keccak(text="params"),
    "resultHash": keccak(text="result"),
}


def receipt_fn(dt, order_id, epsilon_spent):
    h = HASHES
    return dt.functions.recordReceipt(
        order_id, h["datasetHash"], h["algorithmHash"], h["paramsHash"], h["resultHash"], epsilon_spent
    )
