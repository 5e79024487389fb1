"""Django admin for the chain's rows. They follow the chain, so the admin shows them read-only;
changes go through the services (publishing, orders) and the indexer."""

from django.contrib import admin

from chain.models import (
    AccountNonce,
    ChainEvent,
    ChainListing,
    ChainTransaction,
    IndexerCursor,
    Order,
    OrderTicket,
    SiweNonce,
    Wallet,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Wallet)
class WalletAdmin(ReadOnlyAdmin):
    list_display = ("address", "user", "kind", "is_primary", "verified_at", "created_at")
    list_filter = ("kind",)
    search_fields = ("address", "user__username")
    exclude = ("encrypted_key",)  # sealed key material is never shown


@admin.register(ChainTransaction)
class ChainTransactionAdmin(ReadOnlyAdmin):
    list_display = ("id", "purpose", "status", "sender", "tx_hash", "block_number", "created_at")
    list_filter = ("purpose", "status")
    search_fields = ("tx_hash", "sender", "to")


@admin.register(ChainListing)
class ChainListingAdmin(ReadOnlyAdmin):
    list_display = ("dataset", "state", "datatoken_address", "operator_ordering_disabled", "published_at")
    list_filter = ("state", "operator_ordering_disabled")
    search_fields = ("datatoken_address", "nft_address", "dataset__title")


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "dataset", "buyer", "status", "source", "epsilon", "chain_order_id", "created_at")
    list_filter = ("status", "source")
    search_fields = ("tx_hash", "consumer_address", "buyer__username")


@admin.register(OrderTicket)
class OrderTicketAdmin(ReadOnlyAdmin):
    list_display = ("nonce", "listing", "buyer", "buyer_address", "epsilon_units", "expires_at", "created_at")
    search_fields = ("buyer_address", "buyer__username")


@admin.register(ChainEvent)
class ChainEventAdmin(ReadOnlyAdmin):
    list_display = ("name", "block_number", "log_index", "address", "tx_hash")
    list_filter = ("name",)
    search_fields = ("tx_hash", "address")


@admin.register(IndexerCursor)
class IndexerCursorAdmin(ReadOnlyAdmin):
    list_display = ("chain_id", "last_block", "genesis_hash", "updated_at")


@admin.register(SiweNonce)
class SiweNonceAdmin(ReadOnlyAdmin):
    list_display = ("nonce", "user", "created_at", "expires_at", "used_at")


@admin.register(AccountNonce)
class AccountNonceAdmin(ReadOnlyAdmin):
    list_display = ("address", "chain_id", "next_nonce")
