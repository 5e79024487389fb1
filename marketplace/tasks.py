"""Celery tasks: take ids, call one service, safe to run twice."""

from celery import shared_task

from marketplace.services import datasets, notifications


@shared_task(acks_late=True)
def dataset_validate_task(dataset_id: int) -> str:
    return datasets.dataset_validate(dataset_id=dataset_id).validation


@shared_task(acks_late=True)
def notify_moderation_entry_task(entry_id: int) -> bool:
    return notifications.notify_moderation_entry(entry_id=entry_id)


@shared_task(acks_late=True)
def notify_report_filed_task(report_id: int) -> bool:
    return notifications.notify_report_filed(report_id=report_id)


@shared_task(acks_late=True)
def notify_job_ended_task(job_id: int, status: str) -> int:
    return notifications.notify_job_ended(job_id=job_id, status=status)


@shared_task(acks_late=True)
def storage_orphans_sweep_task() -> int:
    return len(datasets.storage_orphans_sweep())


@shared_task(acks_late=True)
def validations_resume_task() -> int:
    return len(datasets.validations_resume())
