from django.urls import path

from chain.api import views

app_name = "chain-api"

urlpatterns = [
    path("chain/", views.ChainInfoView.as_view(), name="chain"),
    path("wallets/", views.WalletListView.as_view(), name="wallets"),
    path("wallets/faucet/", views.WalletFaucetView.as_view(), name="wallet-faucet"),
    path("wallets/<int:wallet_id>/primary/", views.WalletPrimaryView.as_view(), name="wallet-primary"),
    path("auth/siwe/nonce/", views.SiweNonceView.as_view(), name="siwe-nonce"),
    path("auth/siwe/verify/", views.SiweVerifyView.as_view(), name="siwe-verify"),
    path("datasets/<int:dataset_id>/chain/", views.DatasetChainView.as_view(), name="dataset-chain"),
    path("datasets/<int:dataset_id>/publish/", views.DatasetPublishView.as_view(), name="dataset-publish"),
    path("orders/", views.OrderListCreateView.as_view(), name="orders"),
    path("orders/quote/", views.OrderQuoteView.as_view(), name="order-quote"),
    path("orders/prepare/", views.OrderPrepareView.as_view(), name="order-prepare"),
    path("orders/<int:order_id>/", views.OrderDetailView.as_view(), name="order"),
    path("orders/<int:order_id>/reclaim/", views.OrderReclaimView.as_view(), name="order-reclaim"),
]
