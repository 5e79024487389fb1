"""Integrations: how integrators follow their compute jobs without polling blindly.

Server-sent events (``GET /api/v1/jobs/{id}/events/``) stream a job's status and progress to
anyone who may see the job; webhooks POST signed JSON events about a user's jobs to the URLs they
registered, from Celery tasks that retry with backoff and keep a delivery log. Both follow
``compute_to_data.signals.job_status_changed``. See docs/integrations.md."""
