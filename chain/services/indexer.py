"""The indexer: follows the contracts' events into ``ChainEvent`` rows, and the marketplace's listing
and order rows along with them.

Contract of :func:`indexer_run`:

- **Confirmations.** With ``N = CHAIN_CONFIRMATIONS`` (at least 1), a block is read once
  ``latest - block + 1 >= N``: the safe head is ``latest - (N - 1)``, so ``N = 1`` reads the latest
  block. This is the rule an order's confirmation follows too.
- **Bounded ranges.** Blocks ``cursor + 1 .. safe head`` are read in ranges of at most
  ``CHAIN_INDEXER_BATCH_BLOCKS`` blocks, each with one ``eth_getLogs`` whose only filter is the
  topic0 of every followed event (no address filter, so datatokens published after the last run are
  covered without knowing them). Kept: ``DatasetPublished`` from the deployment's factory; datatoken
  events from datatokens that factory published; data NFT events from its NFTs. "Published by the
  factory" is known from ``DatasetPublished`` events already stored or earlier in the same range, and
  from ``ChainListing`` rows: never one RPC call per log.
- **One transaction per range.** The range's new events (``bulk_create`` ignoring conflicts on
  ``(chain_id, tx_hash, log_index)``), the listing and order rows they move, and the cursor are
  written together, under a row lock on the cursor: two runs at once cannot both apply a range.
  Rows are moved only by events that were not stored before, so a replay (a rewound cursor, a second
  run) changes nothing.
- **Another chain.** The cursor keeps the chain's genesis hash. A different genesis (a dev chain
  started afresh) resets the chain id: its events are deleted and reading starts again at the
  deployment block (``IndexerStats.reset``).
- **Reorgs and rollbacks, by block hash.** The cursor keeps the hash of its last block too. When the
  node has another block there (a reorg deeper than N, blocks without any of our events included),
  or is behind the cursor (restarted from an older state file), the indexer walks back through the
  blocks it stored events of, newest first and at most ``REORG_WALK_BLOCKS`` of them, to the newest
  one whose hash the node still has (a block hash commits to every block before it; none found: the
  deployment block). Events after it are deleted and what they moved is undone: an order they placed
  is deleted when the indexer made it and no job uses it, else marked ``vanished`` (its on-chain id
  freed for the order that now holds it); a receipt or refund they recorded goes back to
  ``confirmed`` (the job settles again); listings re-read their budget, price and flag from the chain,
  and one whose publishing was dropped fails with a sentence. Then reading goes forward again
  (``IndexerStats.reset``, ``IndexerStats.dropped``). Applying events is idempotent (orders are found
  by (listing, on-chain order id), settled orders stay settled, budgets are read from the chain), so
  the replay leaves the rows as the chain says; an order of ours whose transaction the new chain
  mined again is confirmed again.

Event arguments are stored JSON-able: addresses EIP-55 checksummed, ``bytes``/``bytesN`` as 0x hex,
integers as JSON integers (exact on both SQLite and PostgreSQL, whatever their size).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_UP, Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models import Q
from django.db.models.constants import OnConflict
from django.utils import timezone
from eth_abi import decode as abi_decode
from eth_typing import ChecksumAddress
from eth_utils import collapse_if_tuple, event_abi_to_log_topic
from web3 import Web3
from web3.exceptions import BlockNotFound
from web3.types import RPCEndpoint

from chain.artifacts import load_artifact
from chain.client import ChainUnavailable, Deployment, chain_id, deployment, web3
from chain.models import ChainEvent, ChainListing, ChainTransaction, IndexerCursor, Order, Wallet
from chain.services.publishing import listings_retire_stale
from chain.services.transitions import listing_transition, order_transition
from chain.units import EPSILON_UNITS, units_to_delta, units_to_price

logger = logging.getLogger(__name__)

# Events followed, per emitting contract. Optional ones are followed when the ABI has them.
FACTORY_EVENTS = ("DatasetPublished",)
DATATOKEN_EVENTS = (
    "OrderStarted",
    "ReceiptRecorded",
    "OrderRefunded",
    "OrderReclaimed",
    "OperatorOrderingDisabled",
    "PriceChanged",
)
NFT_EVENTS = ("StateChanged", "MetadataUpdated")
_OPTIONAL_EVENTS = frozenset(NFT_EVENTS)
# Events after which a datatoken's epsilonOrdered() has moved.
_BUDGET_EVENTS = frozenset({"OrderStarted", "ReceiptRecorded", "OrderRefunded", "OrderReclaimed"})
_SETTLEMENT_EVENTS = ("ReceiptRecorded", "OrderRefunded", "OrderReclaimed")

# Order statuses the chain can still settle; RECEIPTED and REFUNDED are final.
_SETTLEABLE = frozenset({Order.Status.PENDING, Order.Status.CONFIRMING, Order.Status.CONFIRMED, Order.Status.REJECTED})
_EPSILON_QUANTUM = Decimal("0.0001")  # Order.epsilon keeps 4 decimals
_EPSILON_UNITS_MAX = 10**12  # Order.epsilon holds at most 999,999.9999
_IN_CHUNK = 500  # values per SQL IN (...) list


# How many stored blocks a walk back after a reorg or rollback checks before it starts over at the
# deployment block: reorgs on live chains are a few blocks deep.
REORG_WALK_BLOCKS = 128


@dataclass(frozen=True)
class IndexerStats:
    """What one run did: blocks ``from_block .. to_block`` read (``to_block < from_block``: none),
    ``events`` newly stored, ``batches`` ranges read, ``reset`` when stored events were dropped
    (another genesis, a reorg or a rollback) and ``dropped`` how many."""

    from_block: int
    to_block: int
    events: int
    batches: int
    reset: bool
    dropped: int = 0


@dataclass(frozen=True)
class _EventSpec:
    name: str
    source: str  # "factory" | "datatoken" | "nft"
    indexed: tuple[tuple[str, str], ...]  # (name, type) of topics 1..
    names: tuple[str, ...]  # every argument, in ABI order
    data_names: tuple[str, ...]
    data_types: tuple[str, ...]
    fast: bool  # every data type is one static word: decoded without eth_abi


@dataclass(slots=True)
class _Event:
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    address: str  # checksummed
    name: str
    args: dict[str, Any]


@dataclass
class _Run:
    """State of one :func:`indexer_run`: node, deployment, and the addresses learnt so far."""

    w3: Web3
    chain_id: int
    deployment: Deployment
    genesis_hash: str
    factory: str  # lower-case
    specs: dict[str, _EventSpec]  # topic0 (lower-case 0x hex) -> spec
    tokens: set[str] = field(default_factory=set)  # lower-case datatoken addresses the factory published
    nfts: set[str] = field(default_factory=set)  # lower-case data NFT addresses the factory published
    strangers: set[str] = field(default_factory=set)  # lower-case addresses known not to be ours


# --- ABI: topic0 -> event layout -------------------------------------------------------------------


@lru_cache(maxsize=1)
def _event_specs() -> dict[str, _EventSpec]:
    """topic0 -> layout of every followed event, from ``chain/artifacts``."""
    specs: dict[str, _EventSpec] = {}
    for artifact, source, names in (
        ("DataFactory", "factory", FACTORY_EVENTS),
        ("Datatoken", "datatoken", DATATOKEN_EVENTS),
        ("DataNFT", "nft", NFT_EVENTS),
    ):
        abi = {item["name"]: item for item in load_artifact(artifact)["abi"] if item.get("type") == "event"}
        for name in names:
            item = abi.get(name)
            if item is None:
                if name in _OPTIONAL_EVENTS:
                    continue
                raise ChainUnavailable(f"The {artifact} ABI has no {name} event; rebuild chain/artifacts.")
            inputs = item["inputs"]
            topic0 = "0x" + event_abi_to_log_topic(item).hex()
            specs[topic0] = _EventSpec(
                name=name,
                source=source,
                indexed=tuple((i["name"], collapse_if_tuple(i)) for i in inputs if i.get("indexed")),
                names=tuple(i["name"] for i in inputs),
                data_names=tuple(i["name"] for i in inputs if not i.get("indexed")),
                data_types=tuple(collapse_if_tuple(i) for i in inputs if not i.get("indexed")),
                fast=all(_word_type(collapse_if_tuple(i)) for i in inputs if not i.get("indexed")),
            )
    return specs


@lru_cache(maxsize=4096)
def _checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


def _jsonable(typ: str, value: Any) -> Any:
    if typ == "address":
        return _checksum(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        inner = typ[: typ.rindex("[")] if typ.endswith("]") else ""
        return [_jsonable(inner, v) for v in value]
    return value


def _topic_value(typ: str, topic: str) -> Any:
    if typ == "address":
        return _checksum("0x" + topic[-40:])
    if typ.startswith("uint"):
        return int(topic, 16)
    if typ == "bytes32":
        return topic.lower()
    if typ in ("string", "bytes") or typ.endswith("]") or typ.startswith("("):
        return topic.lower()  # a dynamic indexed value is only its keccak hash
    return _jsonable(typ, abi_decode([typ], bytes.fromhex(topic[2:]))[0])


def _word_type(typ: str) -> bool:
    return typ in ("address", "bool", "bytes32") or (typ.startswith("uint") and typ[4:].isdigit())


def _word_value(typ: str, word: str) -> Any:
    """One 32-byte ABI word (64 hex digits) of a type :func:`_word_type` accepts, checked as eth_abi would."""
    value = int(word, 16)
    if typ == "bytes32":
        return "0x" + word.lower()
    if typ == "address":
        if value >> 160:
            raise ValueError("address word with non-zero padding")
        return _checksum("0x" + word[24:])
    if typ == "bool":
        if value > 1:
            raise ValueError("bool word out of range")
        return bool(value)
    if value >> int(typ[4:]):
        raise ValueError(f"{typ} word out of range")
    return value


def _decode(spec: _EventSpec, log: dict[str, Any]) -> dict[str, Any]:
    """Arguments of a raw ``eth_getLogs`` entry, in ABI order. Raises ``ValueError`` on a log that
    does not have the event's layout."""
    topics = log["topics"]
    if len(topics) != 1 + len(spec.indexed):
        raise ValueError(f"{spec.name}: {len(topics)} topics")
    values: dict[str, Any] = {
        name: _topic_value(typ, t) for (name, typ), t in zip(spec.indexed, topics[1:], strict=True)
    }
    if spec.fast:
        data = log["data"][2:]
        if len(data) != 64 * len(spec.data_types):
            raise ValueError(f"{spec.name}: {len(data) // 2} data bytes")
        for i, (name, typ) in enumerate(zip(spec.data_names, spec.data_types, strict=True)):
            values[name] = _word_value(typ, data[64 * i : 64 * i + 64])
    elif spec.data_types:
        try:
            decoded = abi_decode(spec.data_types, bytes.fromhex(log["data"][2:]))
        except Exception as exc:  # eth_abi raises several types for short or malformed data
            raise ValueError(f"{spec.name}: {exc}") from exc
        for name, typ, value in zip(spec.data_names, spec.data_types, decoded, strict=True):
            values[name] = _jsonable(typ, value)
    return {name: values[name] for name in spec.names}


# --- reading ---------------------------------------------------------------------------------------


def _get_logs(run: _Run, start: int, end: int) -> list[dict[str, Any]]:
    """Raw logs of blocks ``start .. end`` carrying a followed topic0. The raw JSON-RPC call skips
    web3's per-log result formatting, which costs more than decoding; a node refusing a range (too
    many results) gets it in halves."""
    params = {"fromBlock": hex(start), "toBlock": hex(end), "topics": [sorted(run.specs)]}
    response = run.w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
    if "error" in response or response.get("result") is None:
        if end > start:
            middle = (start + end) // 2
            return _get_logs(run, start, middle) + _get_logs(run, middle + 1, end)
        raise ChainUnavailable(f"eth_getLogs for block {start} failed: {response.get('error')}")
    return response["result"]


def _chunks(values: Iterable[Any], size: int = _IN_CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _learn_addresses(run: _Run, addresses: set[str]) -> None:
    """Sort lower-case ``addresses`` (not yet known either way) into datatokens, NFTs and strangers,
    from the stored ``DatasetPublished`` events and the listing rows."""
    unknown = addresses - run.tokens - run.nfts - run.strangers
    if not unknown:
        return
    for chunk in _chunks(_checksum(a) for a in unknown):
        for token, nft in ChainListing.objects.filter(
            Q(datatoken_address__in=chunk) | Q(nft_address__in=chunk), chain_id=run.chain_id
        ).values_list("datatoken_address", "nft_address"):
            if token:
                run.tokens.add(token.lower())
            if nft:
                run.nfts.add(nft.lower())
        for args in ChainEvent.objects.filter(
            Q(args__datatoken__in=chunk) | Q(args__nft__in=chunk),
            chain_id=run.chain_id,
            name="DatasetPublished",
            address=_checksum(run.factory),
        ).values_list("args", flat=True):
            run.tokens.add(str(args["datatoken"]).lower())
            run.nfts.add(str(args["nft"]).lower())
    run.strangers |= unknown - run.tokens - run.nfts


def _read_range(run: _Run, start: int, end: int) -> list[_Event]:
    """The followed events of blocks ``start .. end`` emitted by our contracts, decoded, in chain order."""
    ours: list[tuple[_EventSpec, dict[str, Any]]] = []
    later: list[tuple[_EventSpec, dict[str, Any]]] = []
    for log in _get_logs(run, start, end):
        if log.get("removed"):
            continue
        spec = run.specs.get(log["topics"][0].lower()) if log["topics"] else None
        if spec is None:
            continue
        address = log["address"].lower()
        if spec.source == "factory":
            if address == run.factory:
                ours.append((spec, log))
        else:
            later.append((spec, log))
    events: list[_Event] = []
    # Factory events first: a datatoken or NFT published in this range counts for the whole range.
    for spec, log in ours:
        event = _event(run, spec, log)
        if event is not None:
            events.append(event)
            run.tokens.add(event.args["datatoken"].lower())
            run.nfts.add(event.args["nft"].lower())
    _learn_addresses(run, {log["address"].lower() for _, log in later})
    for spec, log in later:
        address = log["address"].lower()
        if address in (run.tokens if spec.source == "datatoken" else run.nfts):
            event = _event(run, spec, log)
            if event is not None:
                events.append(event)
    events.sort(key=lambda e: (e.block_number, e.log_index))
    return events


def _event(run: _Run, spec: _EventSpec, log: dict[str, Any]) -> _Event | None:
    try:
        args = _decode(spec, log)
    except ValueError as exc:
        logger.warning("Skipping an undecodable %s log in tx %s: %s", spec.name, log.get("transactionHash"), exc)
        return None
    return _Event(
        block_number=int(log["blockNumber"], 16),
        block_hash=log["blockHash"].lower(),
        tx_hash=log["transactionHash"].lower(),
        log_index=int(log["logIndex"], 16),
        address=_checksum(log["address"]),
        name=spec.name,
        args=args,
    )


def _epsilon_ordered(run: _Run, events: Sequence[_Event], block: int) -> dict[str, tuple[int, int]]:
    """``Datatoken.epsilonOrdered()`` and ``deltaOrdered()`` at ``block`` for every datatoken whose
    budget moved in ``events`` (one pair of calls per datatoken per range; the latest state when the
    node no longer has that block's)."""
    tokens = {e.address for e in events if e.name in _BUDGET_EVENTS}
    if not tokens:
        return {}
    from chain.wrappers import Datatoken

    values: dict[str, tuple[int, int]] = {}
    for token in tokens:
        datatoken = Datatoken(run.w3, token)
        try:
            values[token] = (
                int(datatoken.epsilon_ordered(block_identifier=block)),
                int(datatoken.delta_ordered(block_identifier=block)),
            )
        except Exception:  # pruned state on a non-archive node
            values[token] = (int(datatoken.epsilon_ordered()), int(datatoken.delta_ordered()))
    return values


# --- writing ---------------------------------------------------------------------------------------


def _bulk_insert(objs: Sequence[models.Model], *, ignore_conflicts: bool = False) -> None:
    """``QuerySet.bulk_create`` without the per-value SQL compiler, which costs more than everything
    else the indexer does: each field's values are prepared with its ``get_db_prep_save`` once per
    distinct value (event rows repeat most of theirs), then multi-row INSERTs go out. ``auto_now`` and
    ``auto_now_add`` fields get one shared timestamp; other fields are taken as set on the objects
    (``pre_save`` is not called: for plain fields it only reads the attribute). For models with an auto
    primary key only; nothing is read back (the objects' pks stay unset) and no signals are sent."""
    if not objs:
        return
    model = type(objs[0])
    connection = connections[router.db_for_write(model)]
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = timezone.now()
    columns: list[list[Any]] = []
    for f in fields:
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            for obj in objs:
                setattr(obj, f.attname, now)
            columns.append([f.get_db_prep_save(now, connection)] * len(objs))
            continue
        cache: dict[tuple[type, Any], Any] = {}
        column = []
        for obj in objs:
            value = getattr(obj, f.attname)
            try:
                key = (value.__class__, value)
                prepared = cache[key]
            except KeyError:
                prepared = cache[key] = f.get_db_prep_save(value, connection)
            except TypeError:  # unhashable (a JSON dict)
                prepared = f.get_db_prep_save(value, connection)
            column.append(prepared)
        columns.append(column)
    rows = list(zip(*columns, strict=True))
    on_conflict = OnConflict.IGNORE if ignore_conflicts else None
    head = "{} {} ({}) VALUES ".format(
        connection.ops.insert_statement(on_conflict=on_conflict),
        connection.ops.quote_name(model._meta.db_table),
        ", ".join(connection.ops.quote_name(_column(f)) for f in fields),
    )
    suffix = connection.ops.on_conflict_suffix_sql(fields, on_conflict, None, None) or ""
    placeholders = "(" + ", ".join(["%s"] * len(fields)) + ")"
    size = max(1, min(1000, connection.ops.bulk_batch_size(fields, objs)))
    with connection.cursor() as cursor:
        for i in range(0, len(rows), size):
            chunk = rows[i : i + size]
            cursor.execute(
                head + ", ".join([placeholders] * len(chunk)) + (" " + suffix if suffix else ""),
                [value for row in chunk for value in row],
            )


def _column(f: models.Field[Any, Any]) -> str:
    """The column of a concrete field (Django calls a field concrete because it has one)."""
    if f.column is None:
        raise TypeError(f"{f} has no column of its own")
    return f.column


# --- the cursor ------------------------------------------------------------------------------------


def _block_hash(run: _Run, number: int) -> str | None:
    """The hash of block ``number`` on the node now (lower-case 0x hex), None when it has none."""
    if number < 0:
        return None
    try:
        block = run.w3.eth.get_block(number)
    except BlockNotFound:
        return None
    return block["hash"].to_0x_hex().lower() if block is not None else None


def _cursor_prepare(run: _Run, latest: int) -> tuple[IndexerCursor, int | None]:
    """The chain's cursor, created at the deployment block on the first run; reset (events of the
    chain id deleted) on another genesis; walked back after a reorg or a rollback. Returns (cursor,
    events dropped, or None when nothing was)."""
    first = run.deployment.deployed_at_block - 1
    with transaction.atomic():
        cursor, created = IndexerCursor.objects.select_for_update().get_or_create(
            chain_id=run.chain_id,
            defaults={"genesis_hash": run.genesis_hash, "last_block": first, "last_block_hash": ""},
        )
        if created:
            return cursor, None
        if cursor.genesis_hash != run.genesis_hash:
            logger.warning(
                "Chain %s has a new genesis block %s (was %s): dropping its events and reading again from the "
                "deployment block %s.",
                run.chain_id,
                run.genesis_hash,
                cursor.genesis_hash,
                run.deployment.deployed_at_block,
            )
            dropped = ChainEvent.objects.filter(chain_id=run.chain_id).delete()[0]
            listings_retire_stale(chain_id=run.chain_id, genesis_hash=run.genesis_hash)
            cursor.genesis_hash = run.genesis_hash
            cursor.last_block, cursor.last_block_hash = first, ""
            cursor.save(update_fields=["genesis_hash", "last_block", "last_block_hash", "updated_at"])
            return cursor, dropped
        reason = ""
        if latest < cursor.last_block:
            reason = f"the node's latest block {latest} is behind the cursor's {cursor.last_block}"
        elif cursor.last_block_hash and cursor.last_block > first:
            if _block_hash(run, cursor.last_block) != cursor.last_block_hash:
                reason = f"block {cursor.last_block} is no longer the one read"
        else:  # a cursor from before block hashes were kept: its newest event's block stands in
            newest = (
                ChainEvent.objects.filter(chain_id=run.chain_id, block_number__lte=cursor.last_block)
                .order_by("-block_number")
                .values_list("block_number", "block_hash")
                .first()
            )
            if newest is not None and _block_hash(run, newest[0]) != newest[1]:
                reason = f"block {newest[0]} is no longer the one an event was read from"
        if reason:
            to_block = _common_block(run, cursor, min(latest, cursor.last_block), first)
            logger.warning(
                "Chain %s reorganised or rolled back (%s): dropping the events after block %s and reading again.",
                run.chain_id,
                reason,
                to_block,
            )
            dropped = _rewind(run, to_block)
            cursor.last_block, cursor.last_block_hash = to_block, _block_hash(run, to_block) or ""
            cursor.save(update_fields=["last_block", "last_block_hash", "updated_at"])
            return cursor, dropped
        if cursor.last_block < first:  # a later deployment on the same chain
            cursor.last_block, cursor.last_block_hash = first, ""
            cursor.save(update_fields=["last_block", "last_block_hash", "updated_at"])
    return cursor, None


def _common_block(run: _Run, cursor: IndexerCursor, below: int, first: int) -> int:
    """The newest block at or below ``below`` the node still has as the indexer read it: the newest
    stored event block whose hash matches (its hash commits to all blocks before it), checking at
    most ``REORG_WALK_BLOCKS`` of them; ``first`` (the deployment block's parent) when none does."""
    blocks = (
        ChainEvent.objects.filter(chain_id=run.chain_id, block_number__lte=below, block_number__gt=first)
        .values_list("block_number", "block_hash")
        .distinct()
        .order_by("-block_number")[:REORG_WALK_BLOCKS]
    )
    for number, stored_hash in blocks:
        if _block_hash(run, number) == stored_hash:
            return number
    return first


def _rewind(run: _Run, to_block: int) -> int:
    """Delete the chain's events after ``to_block`` and undo what they moved. Returns how many.
    Call inside ``transaction.atomic`` holding the cursor's row lock."""
    dropped = list(
        ChainEvent.objects.filter(chain_id=run.chain_id, block_number__gt=to_block).order_by(
            "block_number", "log_index"
        )
    )
    if not dropped:
        return 0
    _undo(run, dropped)
    ChainEvent.objects.filter(pk__in=[e.pk for e in dropped]).delete()
    return len(dropped)


DROPPED_ORDER = "the block that placed it was dropped by the chain (a reorganisation or a rollback)"
DROPPED_PUBLISH = (
    "The chain dropped the block that published this dataset (a reorganisation or a rollback); publish the "
    "dataset again."
)


def _undo(run: _Run, dropped: Sequence[ChainEvent]) -> None:
    """Undo what ``dropped`` events moved in the marketplace's rows (see the module docstring)."""
    from chain.services.orders.settlement import order_settlement_undo, order_vanish
    from chain.wrappers import Datatoken

    addresses = {e.address for e in dropped} | {
        str(e.args.get("datatoken")) for e in dropped if e.name == "DatasetPublished"
    }
    listings: dict[str, ChainListing] = {}
    for row in ChainListing.objects.filter(chain_id=run.chain_id, datatoken_address__in=addresses):
        listings[row.datatoken_address.lower()] = row
    for row in ChainListing.objects.filter(chain_id=run.chain_id, nft_address__in=addresses):
        listings.setdefault(row.datatoken_address.lower(), row)

    started = {(e.address.lower(), int(e.args["orderId"])) for e in dropped if e.name == "OrderStarted"}
    settled = {(e.address.lower(), int(e.args["orderId"])) for e in dropped if e.name in _SETTLEMENT_EVENTS} - started
    for token, order_id in sorted(started):
        listing = listings.get(token)
        order = listing and Order.objects.filter(listing=listing, chain_order_id=order_id).first()
        if not order:
            continue
        if order.source == Order.Source.CHAIN and not Order.objects.filter(pk=order.pk, job__isnull=False).exists():
            order.delete()  # the indexer made it from the dropped event, and nothing uses it
        else:
            order_vanish(order=order, why=DROPPED_ORDER)
    for token, order_id in sorted(settled):
        listing = listings.get(token)
        order = (
            listing
            and Order.objects.filter(
                listing=listing,
                chain_order_id=order_id,
                status__in=[Order.Status.RECEIPTED, Order.Status.REFUNDED, Order.Status.RECLAIMED],
            ).first()
        )
        if not order:
            continue
        order_settlement_undo(order=order)

    for row in {row.pk: row for row in listings.values()}.values():
        if not row.datatoken_address:
            continue
        if not run.w3.eth.get_code(_checksum(row.datatoken_address)):
            row.refresh_from_db(fields=["state"])
            listing_transition(row, ChainListing.State.FAILED, error=DROPPED_PUBLISH)
            continue
        datatoken = Datatoken(run.w3, row.datatoken_address)
        ChainListing.objects.filter(pk=row.pk).update(
            epsilon_ordered_units=datatoken.epsilon_ordered(),
            delta_ordered_units=datatoken.delta_ordered(),
            price_units=Decimal(datatoken.price()),
            operator_ordering_disabled=datatoken.operator_ordering_disabled(),
        )


# --- applying events to the marketplace's rows ------------------------------------------------------


def _epsilon(units: int) -> Decimal:
    return (Decimal(int(units)) / EPSILON_UNITS).quantize(_EPSILON_QUANTUM, rounding=ROUND_UP)


def _apply_published(run: _Run, events: Sequence[_Event], now: datetime) -> None:
    """Attach each ``DatasetPublished`` to the listing that sent it: by its publish transaction, else
    the still-publishing listing of that owner and metadata hash."""
    by_tx: dict[str, ChainListing] = {}
    for chunk in _chunks({e.tx_hash for e in events}):
        for row in ChainListing.objects.filter(chain_id=run.chain_id, publish_tx__tx_hash__in=chunk).select_related(
            "publish_tx"
        ):
            assert row.publish_tx is not None  # the filter is on its hash
            by_tx[row.publish_tx.tx_hash.lower()] = row
    for e in events:
        a = e.args
        listing = by_tx.get(e.tx_hash)
        if listing is None or listing.metadata_hash.lower() != a["metadataHash"]:
            listing = (
                ChainListing.objects.filter(
                    chain_id=run.chain_id,
                    state=ChainListing.State.PUBLISHING,
                    owner_address__iexact=a["owner"],
                    metadata_hash__iexact=a["metadataHash"],
                    datatoken_address="",
                )
                .order_by("id")
                .first()
            )
        if listing is None:
            continue
        if listing.datatoken_address and listing.datatoken_address.lower() != a["datatoken"].lower():
            logger.warning(
                "Listing %s already has datatoken %s; ignoring %s published in %s.",
                listing.pk,
                listing.datatoken_address,
                a["datatoken"],
                e.tx_hash,
            )
            continue
        listing_transition(
            listing,
            ChainListing.State.PUBLISHED,
            nft_address=a["nft"],
            datatoken_address=a["datatoken"],
            payment_token=a["paymentToken"],
            price_units=Decimal(a["price"]),
            epsilon_cap_units=a["epsilonCap"],
            epsilon_per_job_units=a["epsilonPerJobCap"],
            delta_units=a["deltaPerJobCap"],
            delta_cap_units=a["deltaCap"],
            operator_ordering_disabled=True,  # a new datatoken starts closed to orders
            published_at=listing.published_at or now,
        )


def _apply_datatoken_events(
    run: _Run, events: Sequence[_Event], epsilon_ordered: dict[str, tuple[int, int]], now: datetime
) -> None:
    """Orders and listing fields from datatoken events, in chain order, with bulk reads and writes."""
    listings: dict[str, ChainListing] = {}
    for chunk in _chunks({e.address for e in events}):
        # Ordered by id: were two rows ever to name one datatoken, the newest wins.
        for row in ChainListing.objects.filter(chain_id=run.chain_id, datatoken_address__in=chunk).order_by("id"):
            listings[row.datatoken_address.lower()] = row
    if not listings:
        return
    order_events = [e for e in events if e.name in _BUDGET_EVENTS and e.address.lower() in listings]

    # Orders the events may name: by (listing, on-chain order id), and by transaction hash.
    ids_per_listing: dict[int, list[int]] = {}
    for e in order_events:
        ids_per_listing.setdefault(listings[e.address.lower()].pk, []).append(int(e.args["orderId"]))
    by_key: dict[tuple[int, int], Order] = {}
    if ids_per_listing:
        query = Q()
        for listing_id, ids in ids_per_listing.items():
            # Ids are random ticket nonces (contracts v2): asked for one by one, never as a range.
            for chunk in _chunks(set(ids)):
                query |= Q(listing_id=listing_id, chain_order_id__in=chunk)
        for known in Order.objects.filter(query):
            assert known.chain_order_id is not None  # the query asks for a range of on-chain ids
            by_key[(known.listing_id, known.chain_order_id)] = known
    started = [e for e in order_events if e.name == "OrderStarted"]
    by_tx: dict[str, Order] = {}
    wallets: dict[str, int] = {}
    for chunk in _chunks({e.tx_hash for e in started}):
        for known in Order.objects.filter(tx_hash__in=chunk).exclude(tx_hash=""):
            by_tx[known.tx_hash.lower()] = known
        # The marketplace's own order whose transaction the follow task has not settled yet.
        sent = dict(
            ChainTransaction.objects.filter(
                tx_hash__in=[t for t in chunk if t not in by_tx], order__isnull=False
            ).values_list("tx_hash", "order_id")
        )
        if sent:
            orders = Order.objects.in_bulk(set(sent.values()))
            for tx_hash, order_id in sent.items():
                if order_id in orders:
                    by_tx.setdefault(tx_hash.lower(), orders[order_id])
    for chunk in _chunks({e.args["consumer"] for e in started}):
        wallets.update(Wallet.objects.filter(address__in=chunk).values_list("address", "user_id"))

    new_orders: list[Order] = []
    # (datatoken, buyer) of each paid reclaim: the buyer's credit is withdrawn for them.
    reclaimed: list[tuple[str, str]] = []
    dirty_orders: dict[int, Order] = {}
    dirty_listings: dict[int, set[str]] = {}
    for e in events:
        listing = listings.get(e.address.lower())
        if listing is None:
            continue
        a = e.args
        if e.name == "OrderStarted":
            key = (listing.pk, int(a["orderId"]))
            if key in by_key:
                continue
            mine = by_tx.get(e.tx_hash)
            if mine is not None and mine.chain_order_id is None and mine.listing_id == listing.pk:
                # The marketplace's own order: its verification decides the status.
                same = _same_order(mine, a)
                mine.chain_order_id, mine.block_number, mine.amount_units = key[1], e.block_number, Decimal(a["amount"])
                mine.deadline = int(a["deadline"])
                mine.tx_hash = mine.tx_hash or e.tx_hash
                if mine.status == Order.Status.VANISHED and same:
                    # A reorg dropped its block and the new chain mined its transaction again.
                    # Written by the bulk update below, announced once this commits.
                    order_transition(mine, Order.Status.CONFIRMED, save=False, error="")
                dirty_orders[mine.pk] = mine
                by_key[key] = mine
                continue
            if int(a["epsilon"]) >= _EPSILON_UNITS_MAX:
                logger.warning(
                    "Order %s on %s asks for %s micro-epsilon; not recorded.", key[1], e.address, a["epsilon"]
                )
                continue
            order = Order(
                buyer_id=wallets.get(a["consumer"]),
                dataset_id=listing.dataset_id,
                listing=listing,
                source=Order.Source.CHAIN,
                consumer_address=a["consumer"],
                epsilon=_epsilon(a["epsilon"]),
                delta=units_to_delta(a["delta"]),
                algorithm_hash=a["algorithmHash"],
                amount_units=Decimal(a["amount"]),
                # A transaction hash names one order; a second order in the same transaction keeps none.
                tx_hash="" if e.tx_hash in by_tx else e.tx_hash,
                chain_order_id=key[1],
                deadline=int(a["deadline"]),
                block_number=e.block_number,
                status=Order.Status.CONFIRMED,
                confirmed_at=now,
            )
            by_tx.setdefault(e.tx_hash, order)
            by_key[key] = order
            new_orders.append(order)
        elif e.name in _SETTLEMENT_EVENTS:
            settled = by_key.get((listing.pk, int(a["orderId"])))
            if settled is None or settled.status not in _SETTLEABLE:
                continue
            # An order new in this batch is inserted with its settlement (nothing listens to it
            # yet); one the marketplace had is written by the bulk update below and announced.
            fields: dict[str, Any] = {"settled_at": now}
            if e.name == "ReceiptRecorded":
                to = Order.Status.RECEIPTED
                # A receipt charges exactly the reservation (contracts v2).
                fields["epsilon_spent"] = _epsilon(a["epsilon"])
                fields["receipt"] = {
                    "dataset_hash": a["datasetHash"],
                    "algorithm_hash": a["algorithmHash"],
                    "params_hash": a["paramsHash"],
                    "result_hash": a["resultHash"],
                    "tx_hash": e.tx_hash,
                    "block_number": e.block_number,
                    # Same shape as the receipt the order service records: amounts in the payment token.
                    "provider_amount": str(units_to_price(a["providerAmount"])),
                    "fee_amount": str(units_to_price(a["feeAmount"])),
                }
            elif e.name == "OrderRefunded":
                to = Order.Status.REFUNDED
            else:
                to = Order.Status.RECLAIMED
                if int(a["amount"]):
                    reclaimed.append((e.address, a["consumer"]))
            if settled.pk is not None:
                order_transition(settled, to, save=False, **fields)
                dirty_orders[settled.pk] = settled
            else:
                settled.status = to
                for name, value in fields.items():
                    setattr(settled, name, value)
        elif e.name == "OperatorOrderingDisabled":
            listing.operator_ordering_disabled = bool(a["disabled"])
            dirty_listings.setdefault(listing.pk, set()).add("operator_ordering_disabled")
        elif e.name == "PriceChanged":
            listing.price_units = Decimal(a["newPrice"])
            dirty_listings.setdefault(listing.pk, set()).add("price_units")
    for e in order_events:
        listing = listings[e.address.lower()]
        if e.address in epsilon_ordered:
            listing.epsilon_ordered_units, listing.delta_ordered_units = epsilon_ordered[e.address]
            dirty_listings.setdefault(listing.pk, set()).update({"epsilon_ordered_units", "delta_ordered_units"})

    if new_orders:
        _bulk_insert(new_orders)
    if dirty_orders:
        Order.objects.bulk_update(
            list(dirty_orders.values()),
            [
                "tx_hash",
                "chain_order_id",
                "deadline",
                "block_number",
                "amount_units",
                "status",
                "epsilon_spent",
                "receipt",
                "settled_at",
                "error",
            ],
            batch_size=200,
        )
    by_pk = {listing.pk: listing for listing in listings.values()}
    for pk, changed in dirty_listings.items():
        by_pk[pk].save(update_fields=sorted(changed))
    if reclaimed and settings.CHAIN_OPERATOR_KEY:
        from chain.services.orders.settlement import withdrawals_enqueue
        from chain.wrappers import Datatoken

        # Whoever sent the reclaim (the buyer's own wallet, anyone), the credit is paid out to the buyer.
        for token, consumer in reclaimed:
            withdrawals_enqueue(datatoken=Datatoken(run.w3, token), accounts=[consumer])


def _same_order(order: Order, args: dict[str, Any]) -> bool:
    """``OrderStarted`` arguments that place exactly ``order`` (consumer, parameters hash, amount)."""
    return (
        str(args["consumer"]).lower() == order.consumer_address.lower()
        and str(args["algorithmHash"]).lower() == order.algorithm_hash.lower()
        and Decimal(args["amount"]) == order.amount_units
    )


def _store_range(
    run: _Run,
    start: int,
    end: int,
    events: Sequence[_Event],
    epsilon_ordered: dict[str, tuple[int, int]],
    end_hash: str = "",
) -> int | None:
    """Write one range in one transaction. Returns the number of new events, or None when another run
    moved the cursor meanwhile (nothing written)."""
    with transaction.atomic():
        cursor = IndexerCursor.objects.select_for_update().get(chain_id=run.chain_id)
        if cursor.genesis_hash != run.genesis_hash or cursor.last_block != start - 1:
            return None
        stored = set(
            ChainEvent.objects.filter(
                chain_id=run.chain_id, block_number__gte=start, block_number__lte=end
            ).values_list("tx_hash", "log_index")
        )
        new = [e for e in events if (e.tx_hash, e.log_index) not in stored]
        if new:
            _bulk_insert(
                [
                    ChainEvent(
                        chain_id=run.chain_id,
                        block_number=e.block_number,
                        block_hash=e.block_hash,
                        tx_hash=e.tx_hash,
                        log_index=e.log_index,
                        address=e.address,
                        name=e.name,
                        args=e.args,
                    )
                    for e in new
                ],
                ignore_conflicts=True,
            )
            now = timezone.now()
            published = [e for e in new if e.name == "DatasetPublished"]
            if published:
                _apply_published(run, published, now)
            token_events = [e for e in new if e.name in DATATOKEN_EVENTS]
            if token_events:
                _apply_datatoken_events(run, token_events, epsilon_ordered, now)
        cursor.last_block, cursor.last_block_hash = end, end_hash
        cursor.save(update_fields=["last_block", "last_block_hash", "updated_at"])
    return len(new)


# --- the service -----------------------------------------------------------------------------------


def indexer_run(*, max_batches: int | None = None) -> IndexerStats:
    """Read the chain's followed events from the cursor up to the safe head (``latest - (N - 1)``), in
    ranges of at most ``CHAIN_INDEXER_BATCH_BLOCKS`` blocks, at most ``max_batches`` ranges (None: until
    caught up), storing each range's new events, the rows they move and the cursor in one transaction.
    Safe to run twice, or concurrently (a run stops when another one moved the cursor). Raises
    ``ChainUnavailable`` when the chain is not configured or reachable, or when the deployment file
    was written for another chain (its genesis hash)."""
    w3 = web3()
    cid = chain_id()
    dep = deployment()
    genesis = w3.eth.get_block(0)["hash"].to_0x_hex().lower()
    if dep.genesis_hash and dep.genesis_hash.lower() != genesis:
        raise ChainUnavailable(
            f"The deployment file describes the chain with genesis {dep.genesis_hash}, "
            f"but the node at {settings.CHAIN_RPC_URL} has {genesis}; redeploy with `manage.py chain_deploy`."
        )
    latest = int(w3.eth.block_number)
    confirmations = max(1, int(settings.CHAIN_CONFIRMATIONS))
    span = max(1, int(settings.CHAIN_INDEXER_BATCH_BLOCKS))
    safe_head = latest - (confirmations - 1)
    run = _Run(
        w3=w3,
        chain_id=cid,
        deployment=dep,
        genesis_hash=genesis,
        factory=dep.address("DataFactory").lower(),
        specs=_event_specs(),
    )
    cursor, dropped = _cursor_prepare(run, latest)
    from_block = last = cursor.last_block
    events = batches = 0
    while last < safe_head and (max_batches is None or batches < max_batches):
        start, end = last + 1, min(safe_head, last + span)
        # The range's last block hash before its logs: a reorg in between shows on the next run.
        end_hash = _block_hash(run, end) or ""
        found = _read_range(run, start, end)
        stored = _store_range(run, start, end, found, _epsilon_ordered(run, found, end), end_hash)
        if stored is None:
            logger.info("Another indexer run moved the cursor of chain %s; stopping this one.", cid)
            break
        events += stored
        batches += 1
        last = end
    return IndexerStats(
        from_block=from_block + 1,
        to_block=last,
        events=events,
        batches=batches,
        reset=dropped is not None,
        dropped=dropped or 0,
    )
