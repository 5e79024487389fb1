"""Output serializers of the chain API."""

from __future__ import annotations

from rest_framework import serializers

from chain.models import ChainListing, ChainTransaction, Order, Wallet
from chain.units import units_to_delta, units_to_epsilon, units_to_price


class TransactionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChainTransaction
        fields = ("id", "purpose", "status", "sender", "to", "tx_hash", "block_number", "gas_used", "error")


class WalletSerializer(serializers.ModelSerializer):
    balances = serializers.SerializerMethodField(help_text="Ether and payment token held; null when the chain is down.")

    class Meta:
        model = Wallet
        fields = ("id", "address", "kind", "is_primary", "created_at", "verified_at", "balances")

    def get_balances(self, wallet: Wallet) -> dict | None:
        return self.context.get("balances", {}).get(wallet.address)


class ListingSerializer(serializers.ModelSerializer):
    price = serializers.SerializerMethodField()
    epsilon_cap = serializers.SerializerMethodField()
    epsilon_per_job_cap = serializers.SerializerMethodField()
    epsilon_ordered = serializers.SerializerMethodField()
    epsilon_left = serializers.SerializerMethodField()
    delta_cap = serializers.SerializerMethodField()
    publish_tx = TransactionSerializer(read_only=True, allow_null=True)

    class Meta:
        model = ChainListing
        fields = (
            "dataset",
            "chain_id",
            "state",
            "owner_address",
            "nft_address",
            "datatoken_address",
            "payment_token",
            "price",
            "epsilon_cap",
            "epsilon_per_job_cap",
            "epsilon_ordered",
            "epsilon_left",
            "delta_cap",
            "metadata_hash",
            "operator_ordering_disabled",
            "publish_tx",
            "publish_tx_hash",
            "error",
            "published_at",
        )

    def get_price(self, obj: ChainListing) -> str:
        return str(units_to_price(obj.price_units))

    def get_epsilon_cap(self, obj: ChainListing) -> str:
        return str(units_to_epsilon(obj.epsilon_cap_units))

    def get_epsilon_per_job_cap(self, obj: ChainListing) -> str:
        return str(units_to_epsilon(obj.epsilon_per_job_units))

    def get_epsilon_ordered(self, obj: ChainListing) -> str:
        return str(units_to_epsilon(obj.epsilon_ordered_units))

    def get_epsilon_left(self, obj: ChainListing) -> str:
        return str(units_to_epsilon(obj.epsilon_left_units))

    def get_delta_cap(self, obj: ChainListing) -> float:
        return units_to_delta(obj.delta_units)


class OrderSerializer(serializers.ModelSerializer):
    dataset_title = serializers.CharField(source="dataset.title", read_only=True)
    datatoken = serializers.CharField(source="listing.datatoken_address", read_only=True)
    amount = serializers.SerializerMethodField()
    buyer = serializers.CharField(source="buyer.username", default=None, read_only=True)

    class Meta:
        model = Order
        fields = (
            "id",
            "dataset",
            "dataset_title",
            "datatoken",
            "buyer",
            "source",
            "status",
            "consumer_address",
            "epsilon",
            "delta",
            "algorithm_hash",
            "amount",
            "tx_hash",
            "chain_order_id",
            "ticket_expires_at",
            "deadline",
            "block_number",
            "error",
            "epsilon_spent",
            "receipt",
            "created_at",
            "confirmed_at",
            "settled_at",
        )

    def get_amount(self, obj: Order) -> str:
        return str(units_to_price(obj.amount_units))


class QuoteSerializer(serializers.Serializer):
    dataset_id = serializers.IntegerField()
    price = serializers.DecimalField(max_digits=24, decimal_places=6)
    price_units = serializers.IntegerField(help_text="Price in the payment token's base units (what permit signs).")
    fee = serializers.DecimalField(max_digits=24, decimal_places=6, help_text="Marketplace's share of the price.")
    payment_token = serializers.CharField()
    payment_token_symbol = serializers.CharField()
    datatoken = serializers.CharField(help_text="Send buyAndOrder (or dispenseAndOrder) to this contract.")
    epsilon = serializers.DecimalField(max_digits=10, decimal_places=4)
    delta = serializers.FloatField()
    epsilon_left = serializers.DecimalField(max_digits=12, decimal_places=6)
    algorithm_hash = serializers.CharField()
    wallet = serializers.CharField()
    balance = serializers.DecimalField(max_digits=24, decimal_places=6)
    allowance = serializers.DecimalField(max_digits=24, decimal_places=6)
    permit_nonce = serializers.IntegerField()
    chain_id = serializers.IntegerField()
    problems = serializers.ListField(child=serializers.DictField(), help_text="Empty when the order can go ahead.")
    release = serializers.CharField(help_text="What the job will release to the buyer.")
