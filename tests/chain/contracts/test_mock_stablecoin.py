"""MockStablecoin: the development chain's USDC (6 decimals, EIP-2612 permit, capped faucet)."""

from __future__ import annotations

import pytest

from tests.chain.conftest import USDC

pytestmark = pytest.mark.chain

FAUCET_LIMIT = 10_000 * USDC


def test_metadata(chain):
    usdc = chain.usdc
    assert usdc.functions.name().call() == "Mock USD Coin"
    assert usdc.functions.symbol().call() == "USDC"
    assert usdc.functions.decimals().call() == 6
    assert usdc.functions.FAUCET_LIMIT().call() == FAUCET_LIMIT


def test_faucet_mints_up_to_the_limit(chain, accounts):
    who = accounts.provider
    before = chain.balance(who.address)
    receipt = chain.tx(accounts.stranger, chain.usdc.functions.faucet(who.address, FAUCET_LIMIT))
    assert chain.balance(who.address) == before + FAUCET_LIMIT
    transfer = chain.event(chain.usdc, "Transfer", receipt)
    assert (transfer["from"], transfer.to, transfer.value) == (
        "0x0000000000000000000000000000000000000000",
        who.address,
        FAUCET_LIMIT,
    )


def test_faucet_refuses_above_the_limit(chain, accounts):
    fn = chain.usdc.functions.faucet(accounts.stranger.address, FAUCET_LIMIT + 1)
    assert chain.revert(accounts.stranger, fn) == (
        "FaucetLimitExceeded",
        {"requested": FAUCET_LIMIT + 1, "limit": FAUCET_LIMIT},
    )


def test_permit_sets_allowance_without_a_transaction_from_the_owner(chain, accounts):
    owner, spender = accounts.buyer, accounts.stranger
    deadline, v, r, s = chain.sign_permit(owner, spender.address, 7 * USDC)
    chain.tx(spender, chain.usdc.functions.permit(owner.address, spender.address, 7 * USDC, deadline, v, r, s))
    assert chain.usdc.functions.allowance(owner.address, spender.address).call() == 7 * USDC
    assert chain.usdc.functions.nonces(owner.address).call() == 1
    # The same signature cannot be used twice (the nonce moved on).
    fn = chain.usdc.functions.permit(owner.address, spender.address, 7 * USDC, deadline, v, r, s)
    name, _ = chain.revert(spender, fn)
    assert name == "ERC2612InvalidSigner"
