from django.urls import path

from frontend.views import (
    accounts,
    catalogue,
    dashboard,
    integrations,
    jobs,
    ledger,
    moderation,
    orders,
    publish,
    wallet,
)

app_name = "frontend"

urlpatterns = [
    path("", catalogue.catalogue, name="catalogue"),
    # accounts
    path("signup/", accounts.signup, name="signup"),
    path("login/", accounts.LoginView.as_view(), name="login"),
    path("logout/", accounts.LogoutView.as_view(), name="logout"),
    path("me/", accounts.profile, name="profile"),
    path("me/token/", accounts.token_regenerate, name="token-regenerate"),
    path("me/password/", accounts.PasswordChangeView.as_view(), name="password-change"),
    path("me/email/resend/", accounts.email_verify_resend, name="email-verify-resend"),
    path("me/email/verify/<str:token>/", accounts.email_verify, name="email-verify"),
    path("password/reset/", accounts.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/sent/", accounts.PasswordResetDoneView.as_view(), name="password-reset-done"),
    path(
        "password/reset/<uidb64>/<token>/",
        accounts.PasswordResetConfirmView.as_view(),
        name="password-reset-confirm",
    ),
    path("password/reset/done/", accounts.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
    path("me/datasets/", publish.my_datasets, name="my-datasets"),
    path("me/dashboard/", dashboard.provider_dashboard, name="dashboard"),
    path("me/orders/", orders.my_orders, name="my-orders"),
    path("me/jobs/", jobs.my_jobs, name="my-jobs"),
    path("me/wallets/faucet/", wallet.wallet_faucet, name="wallet-faucet"),
    path("me/wallets/<int:wallet_id>/primary/", wallet.wallet_primary, name="wallet-primary"),
    path("me/webhooks/", integrations.webhook_create, name="webhook-create"),
    path("me/webhooks/<int:webhook_id>/delete/", integrations.webhook_delete, name="webhook-delete"),
    path("me/webhooks/<int:webhook_id>/ping/", integrations.webhook_ping, name="webhook-ping"),
    # datasets
    path("datasets/new/", publish.dataset_new, name="dataset-new"),
    path("datasets/<int:dataset_id>/", catalogue.dataset_detail, name="dataset"),
    path("datasets/<int:dataset_id>/schema/", publish.dataset_schema, name="dataset-schema"),
    path("datasets/<int:dataset_id>/edit/", publish.dataset_edit, name="dataset-edit"),
    path("datasets/<int:dataset_id>/mock/", publish.dataset_mock, name="dataset-mock"),
    path("datasets/<int:dataset_id>/mock/remove/", publish.dataset_mock_remove, name="dataset-mock-remove"),
    path("datasets/<int:dataset_id>/delete/", publish.dataset_delete, name="dataset-delete"),
    path("datasets/<int:dataset_id>/status/", publish.dataset_transition, name="dataset-transition"),
    path("datasets/<int:dataset_id>/report/", publish.dataset_report, name="dataset-report"),
    path("datasets/<int:dataset_id>/ledger/", ledger.dataset_ledger, name="dataset-ledger"),
    path(
        "datasets/<int:dataset_id>/commitment/",
        publish.dataset_commitment,
        name="dataset-commitment",
    ),
    # chain
    path("datasets/<int:dataset_id>/publish/", publish.dataset_publish, name="dataset-publish"),
    path("datasets/<int:dataset_id>/job/", jobs.dataset_job, name="dataset-job"),
    path("datasets/<int:dataset_id>/job/wallet/", wallet.dataset_job_wallet, name="dataset-job-wallet"),
    path("orders/<int:order_id>/", orders.order_detail, name="order"),
    path("orders/<int:order_id>/reclaim/", orders.order_reclaim, name="order-reclaim"),
    # compute jobs
    path("jobs/<int:job_id>/", jobs.job_detail, name="job"),
    path("jobs/<int:job_id>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/moderator-cancel/", jobs.job_moderator_cancel, name="job-moderator-cancel"),
    path("jobs/<int:job_id>/verify/", jobs.job_verify, name="job-verify"),
    path("jobs/<int:job_id>/result/", jobs.job_result, name="job-result"),
    path("jobs/<int:job_id>/result/<str:name>/", jobs.job_artifact, name="job-artifact"),
    # moderation
    path("moderation/", moderation.moderation_queue, name="moderation"),
    path("moderation/log/", moderation.moderation_log, name="moderation-log"),
    path("moderation/reports/<int:report_id>/resolve/", moderation.report_resolve, name="report-resolve"),
    path("moderation/datasets/<int:dataset_id>/edit/", moderation.dataset_edit_decide, name="dataset-edit-decide"),
]
