from django.urls import path

from integrations.api import views

app_name = "integrations-api"

urlpatterns = [
    path("webhooks/", views.WebhookListCreateView.as_view(), name="webhooks"),
    path("webhooks/<int:webhook_id>/", views.WebhookDetailView.as_view(), name="webhook"),
    path("webhooks/<int:webhook_id>/ping/", views.WebhookPingView.as_view(), name="webhook-ping"),
    path("webhooks/<int:webhook_id>/rotate-secret/", views.WebhookRotateSecretView.as_view(), name="webhook-rotate"),
    path("webhooks/<int:webhook_id>/deliveries/", views.WebhookDeliveriesView.as_view(), name="webhook-deliveries"),
    path(
        "webhooks/<int:webhook_id>/deliveries/<int:delivery_id>/redeliver/",
        views.WebhookRedeliverView.as_view(),
        name="webhook-redeliver",
    ),
    path("jobs/<int:job_id>/events/", views.JobEventsView.as_view(), name="job-events"),
]
