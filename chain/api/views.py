"""REST API of the chain: configuration, wallets (managed and SIWE-linked), publishing, orders."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import login
from django.http import HttpRequest
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import CSRFCheck
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
from common.api.errors import PAGE_NOT_FOUND
from common.api.errors import error_responses as _errors
from common.errors import NotFound, PermissionDenied
from common.pagination import StandardPagination
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
        wallet_rpc_url = serializers.CharField(
            allow_null=True,
            help_text="A JSON-RPC URL for browser wallets to add this chain with (wallet_addEthereumChain): "
            "CHAIN_PUBLIC_RPC_URL, or the node itself on a development chain; null when there is none to give.",
        )

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
                "wallet_rpc_url": settings.CHAIN_PUBLIC_RPC_URL or (settings.CHAIN_RPC_URL if dep.has_faucet else None),
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


def _csrf_refusal(request: HttpRequest) -> str | None:
    """Django's CSRF check (as DRF's session authentication runs it): why it fails, or None."""
    # Like SessionAuthentication.enforce_csrf: no response and no view are ever asked for, and
    # DRF's CSRFCheck._reject returns the reason where the stubs keep Django's HttpResponseForbidden.
    check = CSRFCheck(lambda req: None)  # type: ignore[arg-type]  # get_response is never called
    check.process_request(request)
    return check.process_view(request, None, (), {})  # type: ignore[arg-type, return-value]  # see above


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
        examples=[
            OpenApiExample(
                "With the address", value={"address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"}, request_only=True
            )
        ],
    )
    def post(self, request):
        data = self.NonceInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(
            wallet_services.siwe_nonce_issue(
                user=request.user,
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
        create_account = serializers.BooleanField(
            required=False,
            default=False,
            help_text="Signed out: a wallet no account is linked to signs up (a new account owns it).",
        )

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
        description="The message must be the one the nonce call returned, or one with the same fields: domain and "
        "URI of the site (SITE_URL), the configured chain id, an issued nonce (single use, expiring), issued-at not "
        "in the future, expiration-time not past. Signed out, a browser (a request with cookies) must send "
        "`X-CSRFToken` and gets a session; a client without cookies gets only the API `token`.",
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
        # A browser (it sends cookies) gets a session, so it must pass Django's CSRF check even when
        # signed out: otherwise another site could sign a visitor in as the attacker's account
        # (login CSRF). A client without cookies gets only the token in the answer, no session.
        browser = bool(request.COOKIES)
        if browser and not request.user.is_authenticated and _csrf_refusal(request._request):
            raise PermissionDenied(
                "CSRF check failed: send the X-CSRFToken header with the csrftoken cookie's value.",
                code="csrf_failed",
            )
        message = wallet_services.siwe_verify(
            message=data.validated_data["message"],
            signature=data.validated_data["signature"],
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
        user = wallet_services.wallet_login_user(message=message, create_account=data.validated_data["create_account"])
        if browser:
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
                    "deltaPerJobCap": params.delta_per_job_cap,
                },
            }
        )

    @extend_schema(
        request=PublishInput,
        responses={202: ListingSerializer, **_errors(400, 401, 403, 404, 409, 503)},
        tags=["chain"],
        summary="Publish my dataset on chain (data NFT + datatoken + price + budget caps, one transaction)",
        examples=[
            OpenApiExample("From my managed wallet", value={}, request_only=True),
            OpenApiExample(
                "Sent from my own wallet",
                value={"tx_hash": "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060"},
                request_only=True,
            ),
        ],
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
        examples=[
            OpenApiExample(
                "Logistic regression",
                value={
                    "dataset": 1,
                    "epsilon": "0.5",
                    "delta": 1e-6,
                    "algorithm": "dp-logistic-regression",
                    "parameters": {"target": "heart_disease", "epochs": 5},
                },
                request_only=True,
            )
        ],
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


def _transaction_serializer() -> type[serializers.Serializer]:
    # "from" is a Python keyword: declare the fields through the class namespace.
    fields = {
        "chain_id": serializers.IntegerField(),
        "from": serializers.CharField(help_text="The paying wallet (yours); sign with its key."),
        "to": serializers.CharField(help_text="The dataset's datatoken."),
        "data": serializers.CharField(help_text="buyAndOrder (or dispenseAndOrder for a free dataset) call data."),
        "value": serializers.IntegerField(help_text="Always 0: the price is paid in the payment token."),
        "gas": serializers.IntegerField(help_text="The node's estimate with headroom."),
        "nonce": serializers.IntegerField(help_text="Hint: the wallet's next nonce (pending state)."),
        "max_fee_per_gas": serializers.IntegerField(help_text="Hint (wei): twice the base fee plus the tip."),
        "max_priority_fee_per_gas": serializers.IntegerField(help_text="Hint (wei)."),
        "type": serializers.IntegerField(help_text="2: EIP-1559."),
    }
    return type("UnsignedTransactionSerializer", (serializers.Serializer,), fields)


UnsignedTransactionSerializer = _transaction_serializer()


class PermitTypedDataSerializer(serializers.Serializer):
    types = serializers.DictField(help_text="EIP712Domain and Permit (EIP-2612).")
    primaryType = serializers.CharField()  # noqa: N815  (the EIP-712 field name)
    domain = serializers.DictField(help_text="name, version, chainId, verifyingContract (the payment token).")
    message = serializers.DictField(
        help_text="owner (your wallet), spender (the datatoken), value (the price in token units), nonce, "
        "deadline; uint256 values as decimal strings."
    )


EXAMPLE_WALLET = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
EXAMPLE_DATATOKEN = "0x8464135c8F25Da09e49BC8782676a84730C318bC"
EXAMPLE_USDC = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
EXAMPLE_PREPARE = {
    "dataset": 1,
    "epsilon": "0.5",
    "delta": 1e-6,
    "algorithm_hash": "0x6c1c0d3b4b3f5a4e9f1f2d1e0c9b8a7f6e5d4c3b2a1908f7e6d5c4b3a2910f8e",
    "wallet": EXAMPLE_WALLET,
}
EXAMPLE_PREPARED = {
    "dataset": 1,
    "wallet": EXAMPLE_WALLET,
    "chain_id": 31337,
    "datatoken": EXAMPLE_DATATOKEN,
    "payment_token": EXAMPLE_USDC,
    "payment_token_symbol": "USDC",
    "price": "3.000000",
    "price_units": 3000000,
    "epsilon": "0.5000",
    "delta": 1e-6,
    "algorithm_hash": EXAMPLE_PREPARE["algorithm_hash"],
}


class OrderPrepareView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]

    class PrepareInput(OrderInputSerializer):
        wallet = serializers.CharField(
            max_length=42, help_text="Your own wallet, linked with Sign-In with Ethereum: it signs and pays."
        )
        permit_signature = serializers.RegexField(
            r"^0x[0-9a-fA-F]{130}$",
            required=False,
            help_text="Second step: your wallet's EIP-712 signature of the permit the first step returned.",
        )
        deadline = serializers.IntegerField(
            required=False, min_value=1, max_value=2**64, help_text="With permit_signature: the deadline it signed."
        )

        def validate(self, attrs):
            attrs = super().validate(attrs)
            if attrs.get("permit_signature") and not attrs.get("deadline"):
                raise serializers.ValidationError("Send the permit's deadline with its signature.")
            return attrs

    class PrepareOutput(serializers.Serializer):
        step = serializers.ChoiceField(
            choices=["sign_permit", "send_transaction"],
            help_text="sign_permit: sign `permit` (eth_signTypedData_v4) and call again with the signature. "
            "send_transaction: sign and send `transaction`, then register its hash.",
        )
        dataset = serializers.IntegerField(source="dataset_id")
        wallet = serializers.CharField()
        chain_id = serializers.IntegerField()
        datatoken = serializers.CharField()
        payment_token = serializers.CharField()
        payment_token_symbol = serializers.CharField()
        price = serializers.DecimalField(max_digits=40, decimal_places=6)
        price_units = serializers.IntegerField()
        epsilon = serializers.DecimalField(max_digits=12, decimal_places=4)
        delta = serializers.FloatField()
        algorithm_hash = serializers.CharField(help_text="What the order commits to on chain.")
        permit = PermitTypedDataSerializer(allow_null=True, help_text="EIP-712 typed data of the EIP-2612 permit.")
        deadline = serializers.IntegerField(allow_null=True, help_text="The permit's deadline (unix seconds).")
        transaction = UnsignedTransactionSerializer(
            allow_null=True, help_text="Unsigned buyAndOrder (or dispenseAndOrder), ticket and permit inside."
        )
        ticket = serializers.DictField(
            allow_null=True,
            help_text="The operator-signed order ticket inside `transaction`: epsilon, delta, algorithm_hash, price, "
            "nonce (the on-chain order id), expiry (unix seconds; the order must be mined by then) and signature. "
            "Null while a permit is to be signed.",
        )

    @extend_schema(
        request=PrepareInput,
        responses={200: PrepareOutput, **_errors(400, 401, 403, 404, 409, 503)},
        tags=["orders"],
        summary="Prepare buy+order for my own wallet: the permit to sign, then the transaction to send",
        description="For a wallet the marketplace holds no key of (a browser wallet, an API client's key), linked "
        "with SIWE. Call it first without `permit_signature`: the answer holds the EIP-2612 permit as EIP-712 typed "
        "data (`permit`) and its `deadline`. Sign it (eth_signTypedData_v4, or eth-account `sign_typed_data`) and "
        "call again with `permit_signature` and `deadline`: the answer holds the unsigned `buyAndOrder` "
        "transaction carrying the permit. Sign and send it (one transaction pays and orders), then register its "
        "hash: `POST jobs/` (or `POST orders/`) with `tx_hash`. For a compute job, `algorithm_hash` is the "
        "`params_hash` of `POST jobs/quote/`. Refused before anything is signed, like a quote's problems: not "
        "listed or ordering closed, your own dataset, epsilon or delta past the caps, budget exhausted, balance "
        "too low, a wallet not linked to you. A free dataset needs no permit: the first answer is the transaction.",
        examples=[
            OpenApiExample("Step 1: ask for the permit", value=EXAMPLE_PREPARE, request_only=True),
            OpenApiExample(
                "Step 2: send the signed permit",
                value={**EXAMPLE_PREPARE, "permit_signature": "0x" + "ab" * 65, "deadline": 1767225600},
                request_only=True,
            ),
            OpenApiExample(
                "Step 1 answer: the permit to sign",
                value={
                    **EXAMPLE_PREPARED,
                    "step": "sign_permit",
                    "permit": {
                        "types": order_services.PERMIT_TYPES,
                        "primaryType": "Permit",
                        "domain": {
                            "name": "Test USD Coin",
                            "version": "1",
                            "chainId": 31337,
                            "verifyingContract": EXAMPLE_USDC,
                        },
                        "message": {
                            "owner": EXAMPLE_WALLET,
                            "spender": EXAMPLE_DATATOKEN,
                            "value": "3000000",
                            "nonce": "0",
                            "deadline": "1767225600",
                        },
                    },
                    "deadline": 1767225600,
                    "transaction": None,
                },
                response_only=True,
            ),
            OpenApiExample(
                "Step 2 answer: the transaction to sign and send",
                value={
                    **EXAMPLE_PREPARED,
                    "step": "send_transaction",
                    "permit": None,
                    "deadline": 1767225600,
                    "transaction": {
                        "chain_id": 31337,
                        "from": EXAMPLE_WALLET,
                        "to": EXAMPLE_DATATOKEN,
                        "data": "0x5c1f6f4a...",
                        "value": 0,
                        "gas": 251000,
                        "nonce": 0,
                        "max_fee_per_gas": 2000000000,
                        "max_priority_fee_per_gas": 1000000000,
                        "type": 2,
                    },
                },
                response_only=True,
            ),
        ],
    )
    def post(self, request):
        data = self.PrepareInput(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        dataset = catalog.dataset_get_visible(dataset_id=v["dataset"], user=request.user)
        prepared = order_services.order_prepare(
            user=request.user,
            dataset=dataset,
            epsilon=v["epsilon"],
            delta=v["delta"],
            algorithm_hash_hex=v["algorithm_hash"],
            wallet_address=v["wallet"],
            permit_signature=v.get("permit_signature"),
            permit_deadline=v.get("deadline"),
        )
        return Response(self.PrepareOutput(prepared).data)


class OrderListCreateView(APIView):
    permission_classes = [IsAuthenticated]
    parser_classes = [JSONParser, FormParser]
    pagination_class = StandardPagination  # also what the schema's paginated list is drawn from

    class OrderCreateInput(OrderInputSerializer):
        tx_hash = serializers.RegexField(
            HASH_PATTERN,
            required=False,
            help_text="Your own wallet sent buyAndOrder: its transaction hash. Without it the marketplace sends "
            "the order from your managed wallet.",
        )

    @extend_schema(
        responses={200: OrderSerializer(many=True), **_errors(401), **PAGE_NOT_FOUND},
        tags=["orders"],
        summary="My orders (newest first)",
    )
    def get(self, request):
        paginator = self.pagination_class()
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


class OrderReclaimView(APIView):
    """A buyer's exit: an order past its on-chain deadline that the marketplace never settled."""

    permission_classes = [IsAuthenticated]

    class ReclaimOutput(serializers.Serializer):
        order = OrderSerializer()
        transaction = serializers.DictField(
            allow_null=True,
            help_text="Own wallet: send this call yourself (`to`, `data`, and the reclaim(orderId, order) arguments). "
            "Null when the marketplace sends it from your managed wallet.",
        )

    @extend_schema(
        request=None,
        responses={202: ReclaimOutput, **_errors(401, 403, 404, 409, 503)},
        tags=["orders"],
        summary="Reclaim an order past its deadline: the payment back to the buyer, the epsilon released",
        description="Only once the order's on-chain deadline passed unsettled (409 `order_not_expired` before). "
        "A managed wallet's reclaim is sent by the marketplace; an own wallet gets the call to send "
        "(Datatoken.reclaim(orderId, order), callable by anyone: the payment always goes to the buyer).",
    )
    def post(self, request, order_id: int):
        order = order_services.order_get_visible(order_id=order_id, user=request.user)
        # Only the buyer may reclaim: both services check it (PermissionDenied) before anything else.
        wallet = Wallet.objects.filter(user=request.user, address=order.consumer_address).first()
        call = None
        if wallet is not None and wallet.kind == Wallet.Kind.MANAGED:
            order_services.order_reclaim(order=order, user=request.user)
        else:
            call = order_services.order_reclaim_call(order=order, user=request.user)
        order.refresh_from_db()
        return Response({"order": OrderSerializer(order).data, "transaction": call}, status=status.HTTP_202_ACCEPTED)
