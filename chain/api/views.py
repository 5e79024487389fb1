"""REST API of the chain: configuration, wallets (managed and SIWE-linked), publishing, orders."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import login
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.models import Token
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from web3 import Web3

from chain import client
from chain.api.serializers import ListingSerializer, OrderSerializer, QuoteSerializer, WalletSerializer
from chain.models import ChainListing, Order, Wallet
from chain.selectors import wallet_balances
from chain.services import orders as order_services
from chain.services import publishing as publishing_services
from chain.services import wallets as wallet_services
from chain.units import HASH_PATTERN
from chain.wrappers import MockStablecoin
from marketplace.api.errors import error_responses as _errors
from marketplace.api.pagination import StandardPagination
from marketplace.errors import NotFound, PermissionDenied
from marketplace.selectors import catalog


class ChainInfoView(APIView):
    permission_classes = [AllowAny]

    class ChainInfoSerializer(serializers.Serializer):
        chain_id = serializers.IntegerField()
        contracts = serializers.DictField(child=serializers.CharField())
        operator = serializers.CharField()
        fee_collector = serializers.CharField()
        fee_bps = serializers.IntegerField()
        confirmations = serializers.IntegerField()
        block_number = serializers.IntegerField()
        payment_token_symbol = serializers.CharField()

    @extend_schema(
        responses={200: ChainInfoSerializer, **_errors(503)},
        tags=["chain"],
        summary="The chain the marketplace settles on: chain id, contract addresses, confirmations",
    )
    def get(self, request):
        dep = client.deployment()
        token = dep.payment_token
        return Response(
            {
                "chain_id": dep.chain_id,
                "contracts": dep.contracts,
                "operator": dep.operator,
                "fee_collector": dep.fee_collector,
                "fee_bps": dep.fee_bps,
                "confirmations": settings.CHAIN_CONFIRMATIONS,
                "block_number": client.web3().eth.block_number,
                "payment_token_symbol": MockStablecoin(client.web3(), token).symbol() if token else "",
            }
        )


def _balances(wallets: list[Wallet]) -> dict:
    """Balances for the wallet serializer; none (null) when the chain cannot be reached."""
    try:
        return wallet_balances(wallets)
    except client.ChainUnavailable:
        return {}


class WalletListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: WalletSerializer(many=True), **_errors(401)},
        tags=["wallets"],
        summary="My wallets: the managed one and SIWE-linked ones, with balances",
    )
    def get(self, request):
        wallet_services.wallet_managed_get_or_create(user=request.user)
        wallets = list(Wallet.objects.filter(user=request.user))
        return Response(WalletSerializer(wallets, many=True, context={"balances": _balances(wallets)}).data)


class WalletPrimaryView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        request=None,
        responses={200: WalletSerializer, **_errors(401, 404)},
        tags=["wallets"],
        summary="Make one of my wallets the primary one (used for publishing and quotes)",
    )
    def post(self, request, wallet_id: int):
        wallet = Wallet.objects.filter(pk=wallet_id, user=request.user).first()
        if wallet is None:
            raise NotFound("No such wallet.")
        return Response(WalletSerializer(wallet_services.wallet_set_primary(user=request.user, wallet=wallet)).data)


class WalletFaucetView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    @extend_schema(
        request=None,
        responses={200: WalletSerializer, **_errors(401, 403, 503)},
        tags=["wallets"],
        summary="Development chains only: top up my managed wallet with test ether and stablecoin",
    )
    def post(self, request):
        wallet = wallet_services.wallet_top_up(user=request.user)
        return Response(WalletSerializer(wallet, context={"balances": _balances([wallet])}).data)


def _siwe_domain(request) -> str:
    return request.get_host()


class SiweNonceView(APIView):
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, FormParser]

    class NonceInput(serializers.Serializer):
        address = serializers.CharField(required=False, help_text="When given, the answer holds the message to sign.")

    class NonceOutput(serializers.Serializer):
        nonce = serializers.CharField()
        domain = serializers.CharField()
        uri = serializers.CharField()
        chain_id = serializers.IntegerField()
        statement = serializers.CharField()
        issued_at = serializers.CharField()
        expiration_time = serializers.CharField()
        message = serializers.CharField(allow_null=True, help_text="EIP-4361 message to sign with personal_sign.")

    @extend_schema(
        request=NonceInput,
        responses={200: NonceOutput, **_errors(400, 503)},
        tags=["auth"],
        summary="Start Sign-In with Ethereum (EIP-4361): a single-use nonce and the message to sign",
    )
    def post(self, request):
        data = self.NonceInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            wallet_services.siwe_nonce_issue(
                user=request.user,
                domain=_siwe_domain(request),
                uri=request.build_absolute_uri("/"),
                chain_id=client.chain_id(),
                address=data.validated_data.get("address"),
            )
        )


class SiweVerifyView(APIView):
    permission_classes = [AllowAny]
    parser_classes = [JSONParser, FormParser]

    class VerifyInput(serializers.Serializer):
        message = serializers.CharField(max_length=4000)
        signature = serializers.CharField(max_length=200)

    class VerifyOutput(serializers.Serializer):
        wallet = WalletSerializer()
        linked = serializers.BooleanField(help_text="True: linked to the signed-in account. False: signed in with it.")
        token = serializers.CharField(allow_null=True, help_text="API token when signing in with the wallet.")
        username = serializers.CharField()

    @extend_schema(
        request=VerifyInput,
        responses={200: VerifyOutput, **_errors(400, 403, 409, 503)},
        tags=["auth"],
        summary="Finish SIWE: signed in, it links the wallet to your account; signed out, it signs you in",
        examples=[
            OpenApiExample(
                "Signed message",
                value={
                    "message": "127.0.0.1:8000 wants you to sign in with your Ethereum account:\n0x...\n\n...",
                    "signature": "0x...",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = self.VerifyInput(data=request.data)
        data.is_valid(raise_exception=True)
        message = wallet_services.siwe_verify(
            message=data.validated_data["message"],
            signature=data.validated_data["signature"],
            domain=_siwe_domain(request),
            chain_id=client.chain_id(),
        )
        if request.user.is_authenticated:
            wallet = wallet_services.wallet_link_external(user=request.user, message=message)
            return Response(
                {
                    "wallet": WalletSerializer(wallet).data,
                    "linked": True,
                    "token": None,
                    "username": request.user.username,
                }
            )
        user = wallet_services.wallet_login_user(message=message)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        token, _ = Token.objects.get_or_create(user=user)
        wallet = Wallet.objects.get(address=Web3.to_checksum_address(message.address))
        return Response(
            {"wallet": WalletSerializer(wallet).data, "linked": False, "token": token.key, "username": user.username}
        )


def _listing_visible(dataset_id: int, user) -> ChainListing:
    dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=user)
    listing = ChainListing.objects.select_related("publish_tx").filter(dataset=dataset).first()
    if listing is None:
        raise NotFound("This dataset is not on chain.", code="not_on_chain")
    return listing


class DatasetChainView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        responses={200: ListingSerializer, **_errors(404)},
        tags=["chain"],
        summary="A dataset on chain: data NFT, datatoken, price and the privacy budget used and left",
    )
    def get(self, request, dataset_id: int):
        return Response(ListingSerializer(_listing_visible(dataset_id, request.user)).data)


class DatasetPublishView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    class PublishInput(serializers.Serializer):
        tx_hash = serializers.RegexField(
            HASH_PATTERN,
            required=False,
            help_text="Your own wallet sent DataFactory.publish (arguments from GET): its transaction hash. "
            "Without it the marketplace publishes from your managed wallet.",
        )

    class PublishParamsOutput(serializers.Serializer):
        chain_id = serializers.IntegerField()
        factory = serializers.CharField(help_text="Send DataFactory.publish(params) to this address.")
        params = serializers.DictField(help_text="The PublishParams tuple, field by field (docs/chain.md).")

    @extend_schema(
        responses={200: PublishParamsOutput, **_errors(401, 403, 404, 409, 503)},
        tags=["chain"],
        summary="The exact DataFactory.publish arguments for my dataset (to send from my own wallet)",
    )
    def get(self, request, dataset_id: int):
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        if dataset.owner_id != request.user.pk:
            raise PermissionDenied("Only the dataset's owner can publish it on chain.")
        factory, params = publishing_services.publish_params(dataset)
        return Response(
            {
                "chain_id": client.chain_id(),
                "factory": factory,
                "params": {
                    "name": params.name,
                    "symbol": params.symbol,
                    "metadataURI": params.metadata_uri,
                    "metadataHash": "0x" + params.metadata_hash.hex(),
                    "paymentToken": params.payment_token,
                    "price": params.price,
                    "epsilonCap": params.epsilon_cap,
                    "epsilonPerJobCap": params.epsilon_per_job_cap,
                    "deltaCap": params.delta_cap,
                },
            }
        )

    @extend_schema(
        request=PublishInput,
        responses={202: ListingSerializer, **_errors(400, 401, 403, 404, 409, 503)},
        tags=["chain"],
        summary="Publish my dataset on chain (data NFT + datatoken + price + budget caps, one transaction)",
        description="Answers at once with the listing `publishing`; it turns `published` when the transaction is "
        "mined and checked (poll `GET datasets/{id}/chain/`), or `failed` with the reason.",
    )
    def post(self, request, dataset_id: int):
        data = self.PublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        dataset = catalog.dataset_get_visible(dataset_id=dataset_id, user=request.user)
        listing = publishing_services.dataset_publish(
            dataset=dataset, user=request.user, tx_hash=data.validated_data.get("tx_hash")
        )
        return Response(ListingSerializer(listing).data, status=status.HTTP_202_ACCEPTED)


class OrderInputSerializer(serializers.Serializer):
    dataset = serializers.IntegerField()
    epsilon = serializers.DecimalField(max_digits=10, decimal_places=4, min_value=Decimal("0.0001"))
    delta = serializers.FloatField(min_value=0)
    algorithm = serializers.CharField(
        required=False, max_length=100, help_text="Algorithm name (hashed with parameters)."
    )
    parameters = serializers.DictField(required=False, help_text="Algorithm parameters (hashed with the name).")
    algorithm_hash = serializers.RegexField(
        HASH_PATTERN, required=False, help_text="Instead of algorithm + parameters: the hash itself."
    )

    def validate(self, attrs):
        if not attrs.get("algorithm_hash") and not attrs.get("algorithm"):
            raise serializers.ValidationError("Give algorithm (and parameters), or algorithm_hash.")
        if not attrs.get("algorithm_hash"):
            attrs["algorithm_hash"] = order_services.algorithm_hash(attrs["algorithm"], attrs.get("parameters"))
        return attrs


class OrderQuoteView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    class QuoteInput(OrderInputSerializer):
        wallet = serializers.CharField(required=False, help_text="Paying wallet (default: my primary wallet).")

    @extend_schema(
        request=QuoteInput,
        responses={200: QuoteSerializer, **_errors(400, 401, 403, 404, 409, 503)},
        tags=["orders"],
        summary="Quote an order before paying: price, fee, epsilon left, balance and allowance, problems",
    )
    def post(self, request):
        data = self.QuoteInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = catalog.dataset_get_visible(dataset_id=v["dataset"], user=request.user)
        quote = order_services.order_quote(
            user=request.user,
            dataset=dataset,
            epsilon=v["epsilon"],
            delta=v["delta"],
            algorithm_hash_hex=v["algorithm_hash"],
            wallet_address=v.get("wallet"),
        )
        return Response(QuoteSerializer({**dataclasses.asdict(quote), "release": order_services.RELEASE_TEXT}).data)


class OrderListCreateView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    class OrderCreateInput(OrderInputSerializer):
        tx_hash = serializers.RegexField(
            HASH_PATTERN,
            required=False,
            help_text="Your own wallet sent buyAndOrder: its transaction hash. Without it the marketplace sends "
            "the order from your managed wallet.",
        )

    @extend_schema(
        responses={200: OrderSerializer(many=True), **_errors(401)},
        tags=["orders"],
        summary="My orders (newest first)",
    )
    def get(self, request):
        paginator = StandardPagination()
        qs = Order.objects.filter(buyer=request.user).select_related("dataset", "listing", "buyer")
        page = paginator.paginate_queryset(qs, request, view=self)
        return paginator.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(
        request=OrderCreateInput,
        responses={202: OrderSerializer, **_errors(400, 401, 403, 404, 409, 503)},
        tags=["orders"],
        summary="Order a compute job: paid on chain in one transaction, accepted once verified",
        description="Without `tx_hash` the marketplace sends buy+order (with an EIP-2612 permit) from your managed "
        "wallet. With `tx_hash` it verifies the transaction your own wallet sent. Either way the answer comes at "
        "once (`pending` or `confirming`); poll `GET orders/{id}/` until `confirmed` or `rejected`.",
        examples=[
            OpenApiExample(
                "Managed wallet",
                value={"dataset": 1, "epsilon": "0.5", "delta": 1e-6, "algorithm": "dp-logistic-regression"},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        data = self.OrderCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = catalog.dataset_get_visible(dataset_id=v["dataset"], user=request.user)
        order = order_services.order_create(
            user=request.user,
            dataset=dataset,
            epsilon=v["epsilon"],
            delta=v["delta"],
            algorithm_hash_hex=v["algorithm_hash"],
            tx_hash=v.get("tx_hash"),
        )
        return Response(OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)


class OrderDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        responses={200: OrderSerializer, **_errors(401, 404)},
        tags=["orders"],
        summary="One order: status, on-chain order id, amount, receipt",
    )
    def get(self, request, order_id: int):
        return Response(OrderSerializer(order_services.order_get_visible(order_id=order_id, user=request.user)).data)
