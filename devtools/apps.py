from django.apps import AppConfig


class DevtoolsConfig(AppConfig):
    # Installed last: it only adds commands (run_embedded, seed_demo) and has no models.
    name = "devtools"
    verbose_name = "Development tools"
