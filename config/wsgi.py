import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_wsgi_application()

# This module is what gunicorn and runserver load, and nothing else: the web's connections get
# PostgreSQL's statement_timeout; workers and commands do not.
from config.db import web_statement_timeout_enable  # noqa: E402

web_statement_timeout_enable()

# A wrong chain id or an unreachable RPC stops the web server at start with a clear message.
from chain.client import fail_fast_preflight  # noqa: E402

fail_fast_preflight("web server")
