#!/usr/bin/python3
"""Echo service: answers each gatehouse command with an "echo" update to the sending connection.

The Python twin of main.cpp (docs/services.md shows this file). Needs python3-redis only.
Replies go through the update log (FCALL gatehouse_publish, docs/updates.md), falling back to
PUBLISH until a gateway has loaded the function. XACK comes after the publish: a crash between
the two answers that command again (at-least-once).
"""
import argparse, base64, json, os, signal, socket, sys
import redis

ap = argparse.ArgumentParser()
ap.add_argument("--redis", default="redis://127.0.0.1:6379")
ap.add_argument("--command-stream", default="gateway:commands")
ap.add_argument("--updates-channel", default="ws_updates_channel")
ap.add_argument("--group", default="example-service")
ap.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
args = ap.parse_args()
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: sys.exit(0))

r = redis.Redis.from_url(args.redis)
try:  # the group sees what is appended after it was first created ("$")
    r.xgroup_create(args.command_stream, args.group, id="$", mkstream=True)
except redis.ResponseError as e:
    if "BUSYGROUP" not in str(e):
        raise
unlogged_said = False


def publish(update):
    """FCALL gatehouse_publish: a reply to a player is logged for resume; one to a connection
    is published unlogged. Plain PUBLISH (unlogged) until a gateway has loaded the function."""
    global unlogged_said
    text = json.dumps(update)
    try:
        r.execute_command("FCALL", "gatehouse_publish", 0, args.updates_channel, text)
        unlogged_said = False
    except redis.ResponseError as e:
        if "Function not found" not in str(e):
            raise
        if not unlogged_said:
            print("gatehouse_publish not loaded yet; publishing unlogged", flush=True)
            unlogged_said = True
        r.publish(args.updates_channel, text)


print("echo_service ready", flush=True)
start = "0"  # first our own pending entries (a restart finishes them), then new ones: ">"
while True:
    reply = r.xreadgroup(args.group, args.consumer, {args.command_stream: start},
                         count=100, block=500)
    entries = reply[0][1] if reply else []
    if start == "0" and not entries:
        start = ">"
    for entry_id, f in entries:
        if f:  # {} when the entry was trimmed away before it was answered: just ack it
            s = {k.decode(): v.decode("utf-8", "replace") for k, v in f.items()}
            payload = json.loads(s["payload"]) if s["codec"] == "json" else \
                base64.b64encode(f[b"payload"]).decode()  # msgpack, protobuf: bytes
            update = {"player_id": s["player_id"], "type": "echo", "payload": {
                "received_type": s["type"], "codec": s["codec"], "payload": payload,
                "stream_id": entry_id.decode(), "gateway_id": s["gateway_id"]}}
            if not s["connection_id"].startswith("http:"):  # POST /commands: whole player
                update["connection_id"] = s["connection_id"]
            if s.get("correlation_id"):
                update["correlation_id"] = s["correlation_id"]
            publish(update)
        r.xack(args.command_stream, args.group, entry_id)
