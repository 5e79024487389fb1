"""The development chain's faucet: anvil's well-known test accounts and ``fund_address``, which
gives an address test ether and test stablecoin. Production code needs it for the wallet top-up
(offered only when the deployment has a faucet); the embedded node itself lives in ``devtools``."""

from __future__ import annotations

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from chain.deploy import send_signed
from chain.wrappers import MockStablecoin

Account.enable_unaudited_hdwallet_features()

#: anvil's (and Hardhat's) well-known test mnemonic; its accounts hold test ether only.
DEFAULT_MNEMONIC = "test test test test test test test test test test test junk"

# anvil's well-known development accounts (test ether only): 0 deploys and operates, 1 collects fees.
DEV_OPERATOR_PATH = "m/44'/60'/0'/0/0"
DEV_FEE_COLLECTOR_PATH = "m/44'/60'/0'/0/1"


def dev_account(path: str) -> LocalAccount:
    return Account.from_mnemonic(DEFAULT_MNEMONIC, account_path=path)


def fund_address(
    w3: Web3, deployment: dict, address: str, *, ether: float = 1.0, stablecoin: int = 1_000, minimum_ether: float = 0.2
) -> None:
    """Development chains only: give ``address`` ether for gas (from the operator's test ether)
    and stablecoin from the faucet, unless it already has them. Waits for the receipts."""
    operator = dev_account(DEV_OPERATOR_PATH)
    address = Web3.to_checksum_address(address)
    if w3.eth.get_balance(address) < Web3.to_wei(minimum_ether, "ether"):
        send_signed(w3, operator, {"to": address, "value": Web3.to_wei(ether, "ether")})
    token_address = deployment["contracts"].get("MockStablecoin")
    if token_address:
        token = MockStablecoin(w3, token_address)
        units = stablecoin * 10 ** token.decimals()
        if token.balance_of(address) < units // 2:
            send_signed(w3, operator, {"to": token.address, "data": token.faucet_data(address, units)})
