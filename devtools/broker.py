"""The embedded Celery broker of ``make run`` and of the tests that start a real worker: kombu's
SQLAlchemy transport on a SQLite file, made safe against a worker that dies.

Why not kombu's filesystem transport: it writes a message file in place, so a reader can see half
of it (a ``JSONDecodeError`` killed the worker). A SQLite row is committed whole or not at all.

What this adds to kombu's ``sqla`` transport:

* a delivered message stays in the table until it is acknowledged (kombu only hides it, and keeps
  the hidden row forever); an acknowledged one is deleted;
* when a worker starts consuming a queue, the messages of that queue that were delivered and never
  acknowledged are made visible again: the worker that took them is gone (this broker serves one
  consuming worker; production uses Redis or RabbitMQ), so a SIGKILLed worker's tasks run again
  (every task here is safe to run twice);
* SQLite in WAL mode with a busy timeout, so the web server, the worker and beat can all write;
* ``polling_interval`` and the other kombu options are not handed to ``create_engine``.

Selected by ``CELERY_BROKER_URL = "sqlite:///<file>"`` with
``CELERY_BROKER_TRANSPORT = "devtools.broker:Transport"`` (see ``broker_settings``)."""

from __future__ import annotations

import logging
import threading
from datetime import datetime
from json import dumps, loads
from pathlib import Path
from queue import Empty
from typing import Any

from kombu.transport import sqlalchemy as kombu_sqla
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine

logger = logging.getLogger(__name__)

# Options of kombu's own, never meant for create_engine.
_KOMBU_OPTIONS = frozenset(
    {
        "queue_tablename",
        "message_tablename",
        "callback",
        "errback",
        "max_retries",
        "interval_start",
        "interval_step",
        "interval_max",
        "retry_errors",
        "polling_interval",
        "busy_timeout_seconds",
    }
)
# Rows this process has taken and not yet acknowledged, by delivery tag (shared by every channel of
# the process, so a consumer restarted after a lost connection does not hand them out again).
_IN_FLIGHT: dict[str, int] = {}
_IN_FLIGHT_LOCK = threading.Lock()


TRANSPORT = "devtools.broker:Transport"
# How often a worker looks for new messages: part of every job's start-up latency.
POLLING_SECONDS = 0.05


def broker_settings(folder: Path) -> tuple[str, str, dict[str, Any]]:
    """Celery's ``broker_url``, ``broker_transport`` and ``broker_transport_options`` for a broker
    kept in ``folder/broker.sqlite3``. The URL is SQLAlchemy's (the transport is named apart, as
    kombu reads a ``sqla+`` prefix as its own transport)."""
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'broker.sqlite3'}", TRANSPORT, {"polling_interval": POLLING_SECONDS}


class QoS(virtual.QoS):
    channel: Channel  # always this module's Channel (its QoS attribute), which has _forget

    def ack(self, delivery_tag: str) -> None:
        super().ack(delivery_tag)
        self.channel._forget(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)  # a requeue stores a new row first
        self.channel._forget(delivery_tag)


class Channel(kombu_sqla.Channel):
    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Queues consumed without acknowledgements: their messages are deleted as they are taken.
        self._no_ack_queues: set[str] = set()

    def _engine_from_config(self) -> Engine:
        conninfo = self.connection.client
        if conninfo is None or conninfo.hostname is None:
            raise RuntimeError("broker: the transport has no connection with a database URL")
        transport_options = conninfo.transport_options or {}
        options = {k: v for k, v in transport_options.items() if k not in _KOMBU_OPTIONS}
        busy = float(transport_options.get("busy_timeout_seconds", 30))
        engine = create_engine(conninfo.hostname, **options)
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_connection: Any, record: Any) -> None:
                cursor = dbapi_connection.cursor()
                # WAL: readers never block the writer; busy_timeout: wait for the lock, do not fail.
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute(f"PRAGMA busy_timeout={int(busy * 1000)}")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.close()

        return engine

    def _get(self, queue: str) -> dict[str, Any]:  # type: ignore[override]  # no timeout, as kombu's sqla Channel._get
        obj = self._get_or_create(queue)  # type: ignore[attr-defined]  # kombu's sqla Channel; the stubs omit it
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE TRANSACTION"))
        try:
            msg = (
                self.session.query(self.message_cls)
                .with_for_update()
                .filter(self.message_cls.queue_id == obj.id)
                .filter(self.message_cls.visible != False)  # noqa: E712  (SQL, not Python)
                .order_by(self.message_cls.sent_at)
                .order_by(self.message_cls.id)
                .limit(1)
                .first()
            )
            if msg is None:
                raise Empty()
            payload = loads(bytes_to_str(msg.payload))
            tag = payload.get("properties", {}).get("delivery_tag")
            if queue in self._no_ack_queues or not tag:
                self.session.delete(msg)  # nothing will acknowledge it
            else:
                msg.visible = False
                with _IN_FLIGHT_LOCK:
                    _IN_FLIGHT[tag] = msg.id
            return payload
        finally:
            self.session.commit()

    def _forget(self, delivery_tag: str) -> None:
        """The message is done with (acknowledged, or stored again by a requeue): delete its row.

        Celery acknowledges from other threads than the one polling (a prefork worker's result
        handler): this uses a connection of its own from the engine's pool, never the polling
        thread's session, which is not thread-safe (sharing it crashed the worker)."""
        with _IN_FLIGHT_LOCK:
            row_id = _IN_FLIGHT.pop(delivery_tag, None)
        if row_id is None:
            return
        engine, _ = self._open()
        table = self.message_cls.__table__
        try:
            with engine.begin() as conn:
                conn.execute(table.delete().where(table.c.id == row_id))
        except Exception:
            # Left hidden: the next worker start delivers it again, and tasks are safe to run twice.
            logger.warning("broker: could not delete acknowledged message %s", row_id, exc_info=True)

    def _restore(self, message: Any) -> None:
        """Store a rejected (requeued) or unacknowledged message again, as kombu's virtual channel
        does, but on a connection of its own: a requeue can come from another thread too."""
        delivery_info = message.delivery_info
        payload = message.serializable()
        payload["redelivered"] = True
        engine, _ = self._open()
        queues, messages = self.queue_cls.__table__, self.message_cls.__table__
        with engine.begin() as conn:
            for queue in self._lookup(delivery_info["exchange"], delivery_info["routing_key"]):
                queue_id = conn.execute(select(queues.c.id).where(queues.c.name == queue)).scalar()
                if queue_id is None:
                    continue
                conn.execute(
                    messages.insert().values(
                        queue_id=queue_id, payload=dumps(payload), visible=True, timestamp=datetime.now(), version=1
                    )
                )
        self._forget(message.delivery_tag)

    def basic_consume(self, queue: str, no_ack: bool, callback: Any, consumer_tag: str | None, **kwargs: Any) -> str:
        if no_ack:
            self._no_ack_queues.add(queue)
        self._redeliver_orphans(queue)
        return super().basic_consume(queue, no_ack, callback, consumer_tag, **kwargs)

    def _redeliver_orphans(self, queue: str) -> None:
        """Make the queue's delivered but unacknowledged messages visible again, except those this
        process holds: the worker that took them died before it could acknowledge them."""
        obj = self._get_or_create(queue)  # type: ignore[attr-defined]  # kombu's sqla Channel; the stubs omit it
        with _IN_FLIGHT_LOCK:
            mine = list(_IN_FLIGHT.values())
        query = (
            self.session.query(self.message_cls)
            .filter(self.message_cls.queue_id == obj.id)
            .filter(self.message_cls.visible == False)  # noqa: E712
        )
        if mine:
            query = query.filter(self.message_cls.id.not_in(mine))
        count = query.update({self.message_cls.visible: True}, synchronize_session=False)
        self.session.commit()
        if count:
            logger.warning("broker: %s unacknowledged message(s) on %r delivered again", count, queue)


class Transport(kombu_sqla.Transport):
    Channel = Channel
