from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Integrations (webhooks, server-sent events)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from compute_to_data.signals import job_status_changed
        from integrations import receivers

        job_status_changed.connect(receivers.job_status_changed, dispatch_uid="integrations-job-webhooks")
