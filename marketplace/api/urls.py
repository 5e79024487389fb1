from django.urls import path

from marketplace.api import views

app_name = "api"

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="token"),
    path("auth/signup/", views.SignupView.as_view(), name="signup"),
    path("auth/token/regenerate/", views.TokenRegenerateView.as_view(), name="token-regenerate"),
    path("me/", views.MeView.as_view(), name="me"),
    path("me/email/resend/", views.EmailResendView.as_view(), name="email-resend"),
    path("datasets/", views.DatasetListCreateView.as_view(), name="datasets"),
    path("datasets/mine/", views.MyDatasetsView.as_view(), name="datasets-mine"),
    path("datasets/<int:dataset_id>/", views.DatasetDetailView.as_view(), name="dataset"),
    path("datasets/<int:dataset_id>/schema/", views.SchemaView.as_view(), name="dataset-schema"),
    path("datasets/<int:dataset_id>/mock/", views.MockView.as_view(), name="dataset-mock"),
    path("datasets/<int:dataset_id>/submit/", views.DatasetSubmitView.as_view(), name="dataset-submit"),
    path("datasets/<int:dataset_id>/approve/", views.DatasetApproveView.as_view(), name="dataset-approve"),
    path("datasets/<int:dataset_id>/reject/", views.DatasetRejectView.as_view(), name="dataset-reject"),
    path("datasets/<int:dataset_id>/delist/", views.DatasetDelistView.as_view(), name="dataset-delist"),
    path("datasets/<int:dataset_id>/relist/", views.DatasetRelistView.as_view(), name="dataset-relist"),
    path("datasets/<int:dataset_id>/reports/", views.DatasetReportsView.as_view(), name="dataset-reports"),
    path(
        "datasets/<int:dataset_id>/edit/approve/", views.DatasetEditApproveView.as_view(), name="dataset-edit-approve"
    ),
    path("datasets/<int:dataset_id>/edit/reject/", views.DatasetEditRejectView.as_view(), name="dataset-edit-reject"),
    path("moderation/queue/", views.ModerationQueueView.as_view(), name="moderation-queue"),
    path("moderation/log/", views.ModerationLogView.as_view(), name="moderation-log"),
    path("moderation/reports/<int:report_id>/resolve/", views.ReportResolveView.as_view(), name="report-resolve"),
]
