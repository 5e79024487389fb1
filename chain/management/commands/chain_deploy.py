"""Deploy the contracts to an EVM node and record them in the deployment file.

    CHAIN_DEPLOYER_KEY=0x... python manage.py chain_deploy --rpc-url https://... --operator 0x... \\
        --fee-collector 0x... --fee-bps 250 [--mock-stablecoin]
"""

from __future__ import annotations

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from eth_account import Account
from web3 import Web3

from chain.deploy import DeploymentError, deploy_contracts, write_deployment_file


class Command(BaseCommand):
    help = "Deploy the marketplace contracts to CHAIN_RPC_URL (or --rpc-url) and write CHAIN_DEPLOYMENT_FILE."

    def add_arguments(self, parser):
        parser.add_argument("--rpc-url", default=settings.CHAIN_RPC_URL)
        parser.add_argument("--deployment-file", default=settings.CHAIN_DEPLOYMENT_FILE)
        parser.add_argument("--operator", help="Operator address (default: the address of CHAIN_OPERATOR_KEY).")
        parser.add_argument("--fee-collector", help="Marketplace fee address (default: the operator).")
        parser.add_argument("--fee-bps", type=int, default=250, help="Marketplace fee in basis points (max 1000).")
        parser.add_argument(
            "--order-window",
            type=int,
            default=settings.CHAIN_ORDER_WINDOW_SECONDS,
            help="Seconds an order stays settleable before its buyer may reclaim it (1 hour..365 days).",
        )
        parser.add_argument(
            "--parameter-delay",
            type=int,
            default=settings.CHAIN_PARAMETER_DELAY_SECONDS,
            help="Seconds an operator or fee change waits before it can be applied (1..30 days).",
        )
        parser.add_argument(
            "--payment-token",
            action="append",
            default=[],
            help="Allow-list this payment token in the factory (repeatable; the mock stablecoin is always allowed).",
        )
        parser.add_argument(
            "--mock-stablecoin", action="store_true", help="Also deploy the development stablecoin with a faucet."
        )
        parser.add_argument("--expect-chain-id", type=int, default=settings.CHAIN_ID or 0)

    def handle(self, *args, **options):
        if not options["rpc_url"]:
            raise CommandError("No RPC: pass --rpc-url or set CHAIN_RPC_URL.")
        key = os.environ.get("CHAIN_DEPLOYER_KEY") or settings.CHAIN_OPERATOR_KEY
        if not key:
            raise CommandError("Set CHAIN_DEPLOYER_KEY (or CHAIN_OPERATOR_KEY) to the deployer's private key.")
        deployer = Account.from_key(key)
        w3 = Web3(Web3.HTTPProvider(options["rpc_url"], request_kwargs={"timeout": 30}))
        try:
            chain_id = w3.eth.chain_id
        except Exception as exc:
            raise CommandError(f"Cannot reach the chain at {options['rpc_url']}: {exc}") from exc
        if options["expect_chain_id"] and chain_id != options["expect_chain_id"]:
            raise CommandError(
                f"Wrong chain: the node reports chain id {chain_id}, expected {options['expect_chain_id']}."
            )
        operator = options["operator"] or (
            Account.from_key(settings.CHAIN_OPERATOR_KEY).address if settings.CHAIN_OPERATOR_KEY else deployer.address
        )
        try:
            deployment = deploy_contracts(
                w3,
                deployer,
                operator=operator,
                fee_collector=options["fee_collector"] or operator,
                fee_bps=options["fee_bps"],
                order_window=options["order_window"],
                parameter_delay=options["parameter_delay"],
                with_mock_stablecoin=options["mock_stablecoin"],
                payment_tokens=options["payment_token"],
            )
        except DeploymentError as exc:
            raise CommandError(str(exc)) from exc
        write_deployment_file(options["deployment_file"], deployment)
        self.stdout.write(self.style.SUCCESS(f"Deployed to chain {chain_id}; written to {options['deployment_file']}"))
        for name, address in deployment["contracts"].items():
            self.stdout.write(f"  {name:<15} {address}")
