from django.urls import path

from compute_to_data.api import dashboard, views

app_name = "compute-api"

urlpatterns = [
    path("algorithms/", views.AlgorithmsView.as_view(), name="algorithms"),
    path("datasets/<int:dataset_id>/budget/", views.DatasetBudgetView.as_view(), name="dataset-budget"),
    path("datasets/<int:dataset_id>/ledger/", views.DatasetLedgerView.as_view(), name="dataset-ledger"),
    path("datasets/<int:dataset_id>/receipts/", views.DatasetReceiptsView.as_view(), name="dataset-receipts"),
    path("jobs/", views.JobListCreateView.as_view(), name="jobs"),
    path("jobs/quote/", views.JobQuoteView.as_view(), name="job-quote"),
    path("jobs/preview/", views.JobPreviewView.as_view(), name="job-preview"),
    path("jobs/<int:job_id>/", views.JobDetailView.as_view(), name="job"),
    path("jobs/<int:job_id>/cancel/", views.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<int:job_id>/moderator-cancel/", views.JobModeratorCancelView.as_view(), name="job-moderator-cancel"),
    path("jobs/<int:job_id>/result/", views.JobResultView.as_view(), name="job-result"),
    path("jobs/<int:job_id>/result/<str:name>/", views.JobArtifactView.as_view(), name="job-artifact"),
    path("jobs/<int:job_id>/logs/", views.JobLogsView.as_view(), name="job-logs"),
    path("jobs/<int:job_id>/receipt/", views.JobReceiptView.as_view(), name="job-receipt"),
    path("me/dashboard/", dashboard.ProviderDashboardView.as_view(), name="provider-dashboard"),
]
