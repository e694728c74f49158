"""Shared pieces of the RabbitMQ-mode suites (test_amqp_bus, test_amqp_faults): gatehouse-server
started with `--amqp` on a RabbitMQServer from rabbitmq_fixture.py, commands read back from the
command queue with pika, updates published with pika to the updates exchange.

Nothing here knows the server's code: the expectations come from docs/protocol.md sections 3-5 and
issue 20 (docs/amqp.md). Every wait is bounded.
"""

import asyncio
import json
import time

import pika

import gatehouse_harness as h
from gatehouse_harness import Server
from redis_helpers import unique  # noqa: F401  (re-exported for the suites)

# The headers of a command message: section 4's fields less the payload (the body).
HEADER_FIELDS = {"type", "codec", "correlation_id", "player_id", "connection_id", "gateway_id",
                 "client", "ts_ms"}

FAST_RECOVERY = ["--amqp-timeout", "2"]


def amqp_gateway(url, exchange, updates_exchange, gateway_id, *extra, bot_keys=(), env=None):
    """A Server (not started) in RabbitMQ mode."""
    args = ["--amqp", url, "--amqp-exchange", exchange, "--amqp-updates-exchange",
            updates_exchange, "--gateway-id", gateway_id]
    return Server(*args, *extra, bot_keys=bot_keys, env=env)


class Broker:
    """A pika connection to the test's broker, for one thread at a time (asyncio.to_thread with
    a lock would do; the suites call it from one thread)."""

    def __init__(self, rabbit):
        self.rabbit = rabbit
        self.conn = rabbit.connection()
        self.ch = self.conn.channel()

    def reopen(self):
        try:
            self.conn.close()
        except pika.exceptions.AMQPError:
            pass
        self.conn = self.rabbit.connection()
        self.ch = self.conn.channel()

    def close(self):
        try:
            self.conn.close()
        except pika.exceptions.AMQPError:
            pass

    def publish(self, exchange, message):
        """One update, as a service publishes it (dicts as JSON)."""
        if isinstance(message, (dict, list)):
            message = json.dumps(message)
        self.ch.basic_publish(exchange, "", message.encode() if isinstance(message, str)
                              else message)

    def drain(self, queue, limit=100000):
        """Every message ready in `queue`, acked: [(method, properties, body)]."""
        out = []
        while len(out) < limit:
            method, props, body = self.ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            out.append((method, props, body))
        return out

    def depth(self, queue):
        return self.ch.queue_declare(queue, passive=True).method.message_count


def by_stream_id(messages, gateway_id):
    """{stream_id: (method, properties, body)}, the stream id read from message_id."""
    out = {}
    prefix = gateway_id + "/"
    for m in messages:
        mid = m[1].message_id or ""
        if mid.startswith(prefix):
            out[mid[len(prefix):]] = m
    return out


async def wait_message(broker, queue, gateway_id, stream_id, pending, timeout=5.0):
    """The message of `stream_id` from `queue` (others read meanwhile are kept in `pending`)."""
    deadline = time.monotonic() + timeout
    while True:
        if stream_id in pending:
            return pending.pop(stream_id)
        got = await asyncio.to_thread(broker.drain, queue)
        pending.update(by_stream_id(got, gateway_id))
        if stream_id in pending:
            return pending.pop(stream_id)
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(0.02)


async def received_before_marker(broker, exchange, client, player_id,
                                 timeout=h.RECV_TIMEOUT_S):
    """Publishes a marker update to `player_id` and returns what `client` got before it (updates
    reach a player in publish order, so an empty list proves "not delivered")."""
    import secrets
    tag = "m-" + secrets.token_hex(4)
    await asyncio.to_thread(broker.publish, exchange, {"player_id": player_id, "type": "marker",
                                                       "payload": {"tag": tag}})
    got = await client.recv_until(
        lambda e: e["type"] == "marker" and e["payload"] == {"tag": tag}, timeout)
    return [e for e in got[:-1] if e["type"] != "marker"]
