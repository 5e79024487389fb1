"""What the marketplace knows of the chain: wallets, outgoing transactions, on-chain listings,
orders, and the events the indexer has read. The chain is the source of truth; these rows follow it."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Wallet(models.Model):
    """An address a user acts with. Managed wallets have a server-held key (encrypted at rest);
    external wallets are proven by a Sign-In with Ethereum signature and never give us a key."""

    class Kind(models.TextChoices):
        MANAGED = "managed", "Managed by the marketplace"
        EXTERNAL = "external", "Own wallet (self-custody)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wallets")
    address = models.CharField(max_length=42, unique=True, help_text="EIP-55 checksummed.")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    encrypted_key = models.BinaryField(null=True, blank=True, editable=False)
    is_primary = models.BooleanField(default=False, help_text="The wallet orders and publishing use by default.")
    created_at = models.DateTimeField(auto_now_add=True)
    verified_at = models.DateTimeField(null=True, blank=True, help_text="Last SIWE proof (external wallets).")

    class Meta:
        ordering = ["-is_primary", "created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(kind="managed"), name="wallet_one_managed_per_user"
            ),
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(is_primary=True), name="wallet_one_primary_per_user"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.kind})"


class SiweNonce(models.Model):
    """A single-use EIP-4361 nonce, so a signed sign-in message cannot be replayed."""

    nonce = models.CharField(max_length=32, unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"SIWE nonce {self.nonce}"


class AccountNonce(models.Model):
    """Next transaction nonce per sending address, handed out under a row lock."""

    chain_id = models.BigIntegerField()
    address = models.CharField(max_length=42)
    next_nonce = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain_id", "address"], name="account_nonce_unique")]

    def __str__(self) -> str:
        return f"{self.address} on {self.chain_id}: next nonce {self.next_nonce}"


class ChainTransaction(models.Model):
    """An outgoing transaction: recorded in the request, signed, sent and followed by Celery tasks."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        MINED = "mined", "Mined"
        FAILED = "failed", "Failed"

    class Purpose(models.TextChoices):
        PUBLISH = "publish", "Publish a dataset"
        ORDER = "order", "Buy and order"
        RECEIPT = "receipt", "Record a job receipt"
        REFUND = "refund", "Refund an order"
        ORDERING_FLAG = "ordering_flag", "Operator ordering flag"
        FAUCET = "faucet", "Development faucet"
        # Contracts v2: pull payments (anyone may send one; it always pays the account) and a
        # buyer's reclaim of an order past its deadline.
        WITHDRAW = "withdraw", "Withdraw credits"
        RECLAIM = "reclaim", "Reclaim an expired order"

    chain_id = models.BigIntegerField()
    purpose = models.CharField(max_length=20, choices=Purpose.choices)
    sender = models.CharField(max_length=42)
    to = models.CharField(max_length=42)
    data = models.TextField(help_text="Call data, 0x hex.")
    value = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    nonce = models.BigIntegerField(null=True, blank=True)
    gas = models.BigIntegerField(null=True, blank=True)
    tx_hash = models.CharField(max_length=66, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    block_number = models.BigIntegerField(null=True, blank=True)
    gas_used = models.BigIntegerField(null=True, blank=True)
    # What the transaction is about; services read it back when it is mined.
    dataset = models.ForeignKey("marketplace.Dataset", null=True, blank=True, on_delete=models.SET_NULL)
    order = models.ForeignKey("chain.Order", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.purpose} {self.tx_hash or '(unsent)'} {self.status}"


class ChainListing(models.Model):
    """A dataset's data NFT and datatoken on one chain, with the budget the chain enforces."""

    class State(models.TextChoices):
        PUBLISHING = "publishing", "Publishing"
        PUBLISHED = "published", "Published"
        FAILED = "failed", "Publishing failed"

    # Every state change goes through ``chain.services.transitions.listing_transition``, which checks
    # this map. A failed listing is published again (its owner retries, or the indexer finds the
    # transaction mined after all); a published one fails when the chain drops its contracts (a
    # rollback, a new genesis).
    TRANSITIONS: dict[str, frozenset[str]] = {
        State.PUBLISHING: frozenset({State.PUBLISHED, State.FAILED}),
        State.PUBLISHED: frozenset({State.FAILED}),
        State.FAILED: frozenset({State.PUBLISHING, State.PUBLISHED}),
    }

    dataset = models.OneToOneField("marketplace.Dataset", on_delete=models.CASCADE, related_name="chain_listing")
    chain_id = models.BigIntegerField()
    # Which chain of that id: a development chain started afresh has the same id and a new genesis.
    genesis_hash = models.CharField(max_length=66, blank=True)
    state = models.CharField(max_length=12, choices=State.choices, default=State.PUBLISHING)
    owner_address = models.CharField(max_length=42)
    nft_address = models.CharField(max_length=42, blank=True, db_index=True)
    datatoken_address = models.CharField(max_length=42, blank=True, db_index=True)
    payment_token = models.CharField(max_length=42)
    price_units = models.DecimalField(max_digits=78, decimal_places=0)
    epsilon_cap_units = models.BigIntegerField()
    epsilon_per_job_units = models.BigIntegerField()
    delta_units = models.BigIntegerField(help_text="Delta per job (atto-delta).")
    # Contracts v2 budget delta cumulatively: the dataset's total delta cap on chain.
    delta_cap_units = models.BigIntegerField(default=0)
    metadata_hash = models.CharField(max_length=66)
    # Followed from events by the indexer.
    epsilon_ordered_units = models.BigIntegerField(default=0)
    delta_ordered_units = models.BigIntegerField(default=0)
    # A v2 datatoken starts closed to orders: the operator opens it when a moderator lists the dataset.
    operator_ordering_disabled = models.BooleanField(default=True)
    publish_tx = models.ForeignKey(ChainTransaction, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Set when the owner's own wallet sent the publish transaction (the marketplace verifies it).
    publish_tx_hash = models.CharField(max_length=66, blank=True, db_index=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.dataset_id} on {self.chain_id}: {self.datatoken_address or self.state}"

    @property
    def epsilon_left_units(self) -> int:
        return self.epsilon_cap_units - self.epsilon_ordered_units

    @property
    def delta_left_units(self) -> int:
        return self.delta_cap_units - self.delta_ordered_units


class Order(models.Model):
    """A buyer's paid compute order, accepted only once verified on chain."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for the transaction"
        CONFIRMING = "confirming", "Waiting for confirmations"
        CONFIRMED = "confirmed", "Paid, budget reserved on chain"
        REJECTED = "rejected", "Rejected"
        RECEIPTED = "receipted", "Receipt recorded, payment released"
        REFUNDED = "refunded", "Refunded"
        # Past its deadline unsettled, the buyer took the payment back (the budget is released).
        RECLAIMED = "reclaimed", "Reclaimed by the buyer after its deadline"
        # The chain rolled back past the order (or reused its id for another one): never settled.
        VANISHED = "vanished", "Gone from the chain (rolled back)"

    # Every status change goes through ``chain.services.transitions.order_transition``, which checks
    # this map. The indexer may find a settlement on chain before the marketplace decided the order
    # (an own wallet's order still pending, confirming, or rejected by a check the chain overrides);
    # a rollback can take any order off the chain (vanished) or drop only its settlement (confirmed
    # again); a vanished order comes back when the new chain mines its transaction again.
    # A confirmed order past its deadline unsettled can be reclaimed by its buyer (on chain, by
    # anyone); the indexer follows it like a settlement.
    TRANSITIONS: dict[str, frozenset[str]] = {
        Status.PENDING: frozenset(
            {
                Status.CONFIRMED,
                Status.REJECTED,
                Status.RECEIPTED,
                Status.REFUNDED,
                Status.RECLAIMED,
                Status.VANISHED,
            }
        ),
        Status.CONFIRMING: frozenset(
            {
                Status.CONFIRMED,
                Status.REJECTED,
                Status.RECEIPTED,
                Status.REFUNDED,
                Status.RECLAIMED,
                Status.VANISHED,
            }
        ),
        Status.CONFIRMED: frozenset({Status.RECEIPTED, Status.REFUNDED, Status.RECLAIMED, Status.VANISHED}),
        Status.REJECTED: frozenset({Status.RECEIPTED, Status.REFUNDED, Status.RECLAIMED, Status.VANISHED}),
        Status.RECEIPTED: frozenset({Status.CONFIRMED, Status.VANISHED}),
        Status.REFUNDED: frozenset({Status.CONFIRMED, Status.VANISHED}),
        Status.RECLAIMED: frozenset({Status.CONFIRMED, Status.VANISHED}),
        Status.VANISHED: frozenset({Status.CONFIRMED}),
    }

    class Source(models.TextChoices):
        MANAGED = "managed", "Sent by the marketplace from the buyer's managed wallet"
        EXTERNAL = "external", "Sent by the buyer's own wallet"
        CHAIN = "chain", "Found on chain by the indexer"

    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.PROTECT, related_name="orders")
    dataset = models.ForeignKey("marketplace.Dataset", on_delete=models.PROTECT, related_name="orders")
    listing = models.ForeignKey(ChainListing, on_delete=models.PROTECT, related_name="orders")
    source = models.CharField(max_length=10, choices=Source.choices)
    consumer_address = models.CharField(max_length=42)
    epsilon = models.DecimalField(max_digits=10, decimal_places=4)
    delta = models.FloatField()
    algorithm_hash = models.CharField(max_length=66)
    amount_units = models.DecimalField(max_digits=78, decimal_places=0, default=0)
    tx_hash = models.CharField(max_length=66, blank=True)
    # The on-chain order id is the nonce of the order's ticket (contracts v2), known before it is sent.
    chain_order_id = models.BigIntegerField(null=True, blank=True)
    ticket_expires_at = models.DateTimeField(null=True, blank=True, help_text="The order ticket must be mined by then.")
    # From ``OrderStarted``: after it (unix seconds) the operator cannot settle and the buyer may reclaim.
    deadline = models.BigIntegerField(null=True, blank=True)
    block_number = models.BigIntegerField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True)
    epsilon_spent = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    receipt = models.JSONField(null=True, blank=True, help_text="Hashes recorded on chain with the receipt.")
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    settled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # An on-chain order is accepted once: no replaying one payment for two jobs.
            models.UniqueConstraint(
                fields=["listing", "chain_order_id"],
                condition=models.Q(chain_order_id__isnull=False),
                name="order_chain_id_once",
            ),
            models.UniqueConstraint(fields=["tx_hash"], condition=~models.Q(tx_hash=""), name="order_tx_hash_once"),
        ]

    def __str__(self) -> str:
        return f"order {self.pk} ({self.status})"


class OrderTicket(models.Model):
    """An order ticket the operator signed (contracts v2): the order it allows must come from this
    buyer's wallet, for this dataset, epsilon, delta, parameters hash and price, by ``expires_at``;
    its nonce becomes the on-chain order id. Verification checks a mined order against it."""

    listing = models.ForeignKey(ChainListing, on_delete=models.CASCADE, related_name="tickets")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="order_tickets")
    buyer_address = models.CharField(max_length=42)
    nonce = models.BigIntegerField()
    epsilon_units = models.BigIntegerField()
    delta_units = models.BigIntegerField()
    algorithm_hash = models.CharField(max_length=66)
    price_units = models.DecimalField(max_digits=78, decimal_places=0)
    expires_at = models.DateTimeField()
    signature = models.CharField(max_length=132)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["listing", "nonce"], name="order_ticket_nonce_once")]

    def __str__(self) -> str:
        return f"ticket {self.nonce} for {self.buyer_address}"


class ChainEvent(models.Model):
    """A contract event read by the indexer; (chain, tx hash, log index) makes replays harmless."""

    chain_id = models.BigIntegerField()
    block_number = models.BigIntegerField(db_index=True)
    block_hash = models.CharField(max_length=66)
    tx_hash = models.CharField(max_length=66)
    log_index = models.IntegerField()
    address = models.CharField(max_length=42, db_index=True)
    name = models.CharField(max_length=40)
    args = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["block_number", "log_index"]
        constraints = [models.UniqueConstraint(fields=["chain_id", "tx_hash", "log_index"], name="chain_event_once")]

    def __str__(self) -> str:
        return f"{self.name} at {self.block_number}:{self.log_index}"


class IndexerCursor(models.Model):
    """How far the indexer has read one chain, and which chain it was (its genesis block)."""

    chain_id = models.BigIntegerField(unique=True)
    genesis_hash = models.CharField(max_length=66)
    last_block = models.BigIntegerField()
    # The hash of ``last_block`` as read: a reorg or a rollback of blocks without events shows here.
    last_block_hash = models.CharField(max_length=66, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain {self.chain_id} read to block {self.last_block}"
