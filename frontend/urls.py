from django.urls import path

from frontend import views, views_dashboard, views_datasets_private, views_integrations, views_ledger, views_wallet

app_name = "frontend"

urlpatterns = [
    path("", views.catalogue, name="catalogue"),
    # accounts
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("me/", views.profile, name="profile"),
    path("me/token/", views.token_regenerate, name="token-regenerate"),
    path("me/password/", views.PasswordChangeView.as_view(), name="password-change"),
    path("me/email/resend/", views.email_verify_resend, name="email-verify-resend"),
    path("me/email/verify/<str:token>/", views.email_verify, name="email-verify"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/sent/", views.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("password/reset/done/", views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
    path("me/datasets/", views.my_datasets, name="my-datasets"),
    path("me/dashboard/", views_dashboard.provider_dashboard, name="dashboard"),
    path("me/orders/", views.my_orders, name="my-orders"),
    path("me/jobs/", views.my_jobs, name="my-jobs"),
    path("me/wallets/faucet/", views.wallet_faucet, name="wallet-faucet"),
    path("me/wallets/<int:wallet_id>/primary/", views.wallet_primary, name="wallet-primary"),
    path("me/webhooks/", views_integrations.webhook_create, name="webhook-create"),
    path("me/webhooks/<int:webhook_id>/delete/", views_integrations.webhook_delete, name="webhook-delete"),
    path("me/webhooks/<int:webhook_id>/ping/", views_integrations.webhook_ping, name="webhook-ping"),
    # datasets
    path("datasets/new/", views.dataset_new, name="dataset-new"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset"),
    path("datasets/<int:dataset_id>/schema/", views.dataset_schema, name="dataset-schema"),
    path("datasets/<int:dataset_id>/edit/", views.dataset_edit, name="dataset-edit"),
    path("datasets/<int:dataset_id>/mock/", views.dataset_mock, name="dataset-mock"),
    path("datasets/<int:dataset_id>/mock/remove/", views.dataset_mock_remove, name="dataset-mock-remove"),
    path("datasets/<int:dataset_id>/delete/", views.dataset_delete, name="dataset-delete"),
    path("datasets/<int:dataset_id>/status/", views.dataset_transition, name="dataset-transition"),
    path("datasets/<int:dataset_id>/report/", views.dataset_report, name="dataset-report"),
    path("datasets/<int:dataset_id>/ledger/", views_ledger.dataset_ledger, name="dataset-ledger"),
    path(
        "datasets/<int:dataset_id>/commitment/",
        views_datasets_private.dataset_commitment,
        name="dataset-commitment",
    ),
    # chain
    path("datasets/<int:dataset_id>/publish/", views.dataset_publish, name="dataset-publish"),
    path("datasets/<int:dataset_id>/job/", views.dataset_job, name="dataset-job"),
    path("datasets/<int:dataset_id>/job/wallet/", views_wallet.dataset_job_wallet, name="dataset-job-wallet"),
    path("orders/<int:order_id>/", views.order_detail, name="order"),
    # compute jobs
    path("jobs/<int:job_id>/", views.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", views.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/moderator-cancel/", views.job_moderator_cancel, name="job-moderator-cancel"),
    path("jobs/<int:job_id>/verify/", views.job_verify, name="job-verify"),
    path("jobs/<int:job_id>/result/", views.job_result, name="job-result"),
    path("jobs/<int:job_id>/result/<str:name>/", views.job_artifact, name="job-artifact"),
    # moderation
    path("moderation/", views.moderation_queue, name="moderation"),
    path("moderation/log/", views.moderation_log, name="moderation-log"),
    path("moderation/reports/<int:report_id>/resolve/", views.report_resolve, name="report-resolve"),
    path("moderation/datasets/<int:dataset_id>/edit/", views.dataset_edit_decide, name="dataset-edit-decide"),
]
