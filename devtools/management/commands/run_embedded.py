"""``make run``: the embedded chain, demo data, then the web server, the worker and beat together.

Starts anvil (state kept in DATA_DIR/chain, so the chain survives a restart), deploys the
contracts on first start, seeds and funds the demo, and runs the web server, the Celery worker and
Celery beat under ``devtools.supervisor`` with the chain's settings in their environment: a program
that dies is restarted with a back-off while the others keep serving. Ctrl-C stops everything,
anvil last (it saves its state)."""

from __future__ import annotations

import os
import signal
import sys

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from chain import client
from devtools.embedded import start_embedded_chain
from devtools.node import AnvilError
from devtools.supervisor import Program, Supervisor


def embedded_programs(*, port: str, env: dict[str, str], reload: bool = True) -> list[Program]:
    """The web server, the worker and beat, each its own process (beat never inside the worker:
    as ``worker -B`` it outlived a killed worker and kept the old one's pipe open)."""
    python, base = sys.executable, str(settings.BASE_DIR)
    celery = [python, "-m", "celery", "-A", "config"]
    # The embedded broker has no broadcast: no gossip, mingle or broker heartbeats to wait for.
    quiet = ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    schedule = str(settings.DATA_DIR / "celerybeat-schedule")
    no_reload = [] if reload else ["--noreload"]
    return [
        Program("web", [python, "manage.py", "runserver", f"127.0.0.1:{port}", *no_reload], env, base),
        Program(
            "worker",
            [*celery, "worker", "--loglevel", "INFO", "-Q", "celery,compute", "--concurrency", "2", *quiet],
            env,
            base,
        ),
        Program("beat", [*celery, "beat", "--loglevel", "INFO", "--schedule", schedule], env, base),
    ]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Start the embedded chain, seed the demo and run the web server, worker and beat (make run)."

    def add_arguments(self, parser):
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--no-serve", action="store_true", help="Set up the chain and demo data, then stop.")
        parser.add_argument(
            "--noreload", action="store_true", help="The web server does not restart when a Python file changes."
        )

    def handle(self, *args, **options):
        # `kill` (SIGTERM) stops everything as cleanly as Ctrl-C does: anvil must save its state.
        # SIGINT too, even when started with it ignored (in the background of a script).
        signal.signal(signal.SIGTERM, _interrupt)
        signal.signal(signal.SIGINT, _interrupt)
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
            port, reload = str(options["port"]), not options["noreload"]
            programs = embedded_programs(port=port, env=dict(os.environ), reload=reload)
            Supervisor(programs, output=self.stdout).run()
        except KeyboardInterrupt:
            pass
        except client.ChainUnavailable as exc:
            raise CommandError(exc.operator_detail) from exc
        finally:
            chain.node.stop()
            self.stdout.write("Embedded chain stopped; its state is saved for the next start.")
