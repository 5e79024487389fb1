"""Compute-to-data: algorithms, jobs, privacy budget, sandbox launcher, trusted DP runner.

A job starts from a ``chain.Order`` (paid and verified on chain), reserves its epsilon from the
dataset's ``PrivacyBudget``, runs ``compute_to_data/runner`` inside a bubblewrap sandbox
(``compute_to_data.sandbox``) on the decrypted dataset, and ends with a receipt or a refund on
chain (``chain.services.orders``)."""

from django.apps import AppConfig


class ComputeToDataConfig(AppConfig):
    name = "compute_to_data"
    verbose_name = "Compute-to-data"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chain.signals import order_status_changed
        from compute_to_data import receivers

        order_status_changed.connect(receivers.order_status_changed, dispatch_uid="compute-job-follows-order")

        from compute_to_data.models import ComputeJob
        from compute_to_data.runner import params as runner_params
        from compute_to_data.runner import preprocess
        from marketplace.services import notifications, schema

        # The upload checks read cells as a job will, through the runner's own modules.
        schema.runner_register(preprocess=preprocess, params=runner_params)
        # The base app mails about ended jobs without importing this app: it asks this lookup.
        notifications.job_lookup_register(
            lambda job_id: ComputeJob.objects.select_related("buyer", "dataset__owner").filter(pk=job_id).first()
        )
