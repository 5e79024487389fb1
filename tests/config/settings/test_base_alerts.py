"""config.settings.base: a CRITICAL log line (a quarantined workspace, processes that could not be
killed) reaches the operators by e-mail, not only the log."""

import logging

from django.core import mail


def test_a_critical_line_is_mailed_to_the_operators(settings):
    settings.ADMINS = [("ops@example.org", "ops@example.org")]
    logging.getLogger("compute_to_data.sandbox").critical("Workspace of job 7 quarantined in /q/7")
    logging.getLogger("compute_to_data.sandbox").error("an ordinary error is not mailed")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.org"]
    assert "Workspace of job 7 quarantined" in mail.outbox[0].subject


def test_without_operator_addresses_nothing_is_mailed(settings):
    settings.ADMINS = []
    logging.getLogger("compute_to_data.sandbox").critical("Workspace of job 8 quarantined")
    assert mail.outbox == []
