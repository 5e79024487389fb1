"""``python -m marketplace_client``: the command-line tool (see docs/client.md)."""

from marketplace_client.cli import main

raise SystemExit(main())
