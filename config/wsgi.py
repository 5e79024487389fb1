import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

application = get_wsgi_application()

# A wrong chain id or an unreachable RPC stops the web server at start with a clear message.
from chain.client import fail_fast_preflight  # noqa: E402

fail_fast_preflight("web server")
