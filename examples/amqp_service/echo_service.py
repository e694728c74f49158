#!/usr/bin/python3
"""Echo service on RabbitMQ: answers each gatehouse command with an "echo" update to the sending
connection (docs/amqp.md shows this file). Needs Debian's python3-pika only.

Commands come from the queue the gateway declares (`gateway.commands`, durable, bound to the
topic exchange of the same name by `#`): one message per command, the payload as body, the
other docs/protocol.md section 4 fields as headers. Replies go to the updates fanout exchange
(`gateway.updates`), which every gateway instance consumes. The command is acked after its
reply was published and confirmed by the broker: a crash between the two answers that command
again (at-least-once).
"""
import argparse, base64, json, signal, sys
import pika

ap = argparse.ArgumentParser()
ap.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672/%2f")
ap.add_argument("--amqp-exchange", default="gateway.commands")
ap.add_argument("--amqp-updates-exchange", default="gateway.updates")
ap.add_argument("--prefetch", type=int, default=100)
args = ap.parse_args()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: sys.exit(0))

conn = pika.BlockingConnection(pika.URLParameters(args.amqp))
ch = conn.channel()
# The same declarations as the gateway's (idempotent), so either may start first.
ch.exchange_declare(args.amqp_exchange, "topic", durable=True)
ch.queue_declare(args.amqp_exchange, durable=True)
ch.queue_bind(args.amqp_exchange, args.amqp_exchange, "#")
ch.exchange_declare(args.amqp_updates_exchange, "fanout", durable=True)
ch.confirm_delivery()  # basic_publish returns once the broker has the reply
ch.basic_qos(prefetch_count=args.prefetch)


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def on_command(channel, method, props, body):
    h = {k: text(v) for k, v in (props.headers or {}).items()}
    payload = json.loads(body) if h.get("codec") == "json" else \
        base64.b64encode(body).decode()  # msgpack, protobuf: bytes
    stream_id = (props.message_id or "").split("/", 1)[-1]  # "<gateway_id>/<stream_id>"
    update = {"player_id": h["player_id"], "type": "echo", "payload": {
        "received_type": h["type"], "codec": h["codec"], "payload": payload,
        "stream_id": stream_id, "gateway_id": h["gateway_id"]}}
    if not h["connection_id"].startswith("http:"):  # POST /commands: the whole player
        update["connection_id"] = h["connection_id"]
    if props.correlation_id:
        update["correlation_id"] = props.correlation_id
    channel.basic_publish(args.amqp_updates_exchange, "", json.dumps(update).encode(),
                          pika.BasicProperties(content_type="application/json"))
    channel.basic_ack(method.delivery_tag)


ch.basic_consume(args.amqp_exchange, on_command)
print("echo_service ready", flush=True)
ch.start_consuming()
