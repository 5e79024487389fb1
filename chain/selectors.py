"""Reads from the chain for pages and the API (no writes)."""

from __future__ import annotations

from web3 import Web3

from chain import client
from chain.models import Wallet
from chain.units import units_to_price
from chain.wrappers import MockStablecoin


def wallet_balances(wallets: list[Wallet]) -> dict[str, dict[str, str | None]]:
    """Ether and payment-token balance per wallet address, as decimal strings.
    Raises ``ChainUnavailable`` when the chain is not configured or stops answering."""
    dep = client.deployment()
    w3 = client.web3()
    token = MockStablecoin(w3, dep.payment_token) if dep.payment_token else None
    return {
        wallet.address: {
            "ether": str(Web3.from_wei(w3.eth.get_balance(wallet.address), "ether")),
            "payment_token": str(units_to_price(token.balance_of(wallet.address))) if token else None,
        }
        for wallet in wallets
    }
