"""``make run``: the embedded chain, demo data, then the web server and the worker together.

Starts anvil (state kept in DATA_DIR/chain, so the chain survives a restart), deploys the
contracts on first start, seeds and funds the demo, and runs the Procfile with honcho with the
chain's settings in its environment. Ctrl-C stops everything, anvil last (it saves its state)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from chain import client
from chain.embedded import start_embedded_chain
from chain.node import AnvilError


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the embedded chain, seed the demo and run the web server and worker (make run)."

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--no-serve", action="store_true", help="Set up the chain and demo data, then stop.")

    def handle(self, *args, **options):
        # `kill` (SIGTERM) stops everything as cleanly as Ctrl-C does: anvil must save its state.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            chain = start_embedded_chain(settings.DATA_DIR)
        except AnvilError as exc:
            raise CommandError(f"Could not start the embedded chain: {exc}") from exc
        env = chain.environment(settings.DATA_DIR / "chain" / "deployments.json")
        try:
            verb = "deployed the contracts" if chain.deployed_now else "contracts already deployed"
            self.stdout.write(f"Embedded chain {chain.node.rpc_url} (chain id {env['CHAIN_ID']}): {verb}.")
            os.environ.update(env)
            for name, value in env.items():
                setattr(settings, name, int(value) if name in ("CHAIN_ID", "CHAIN_CONFIRMATIONS") else value)
            client.reset_caches()
            client.chain_preflight()
            call_command("seed_demo", port=options["port"], stdout=self.stdout)
            if options["no_serve"]:
                return
            procfile = settings.BASE_DIR / "Procfile"
            honcho = [sys.executable, "-m", "honcho", "start", "-f", str(procfile), "-d", str(settings.BASE_DIR)]
            process = subprocess.Popen(honcho, env={**os.environ, "MARKETPLACE_PORT": str(options["port"])})
            try:
                process.wait()
            except KeyboardInterrupt:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
        except KeyboardInterrupt:
            pass
        except client.ChainUnavailable as exc:
            raise CommandError(exc.operator_detail) from exc
        finally:
            chain.node.stop()
            self.stdout.write("Embedded chain stopped; its state is saved for the next start.")
