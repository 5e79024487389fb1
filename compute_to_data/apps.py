from django.apps import AppConfig


class ComputeToDataConfig(AppConfig):
    name = "compute_to_data"
    verbose_name = "Compute-to-data"
