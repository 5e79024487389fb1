"""Development-only machinery: the embedded anvil node, ``run_embedded`` (``make run``), its
supervisor, the SQLite Celery broker and the demo seed. Production code never imports it; it may
stay installed in production, where it only adds management commands."""
