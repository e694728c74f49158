#!/usr/bin/python3
"""rtc_relay: a WebRTC signalling relay and chunked file relay behind gatehouse-server --redis.

It reads the gateway's command stream with a consumer group (docs/protocol.md section 4) and
publishes updates on the updates channel (section 5), like examples/redis_service/echo_service.py.
docs/examples/rtc-relay.md is the message contract; test_rtc_relay.py runs it end to end.

- Rooms: `rtc.join` / `rtc.leave` {room}. Membership lives in Redis (a set per room and a set
  per player, changed by one Lua script so concurrent service instances cannot overfill a
  room), so a restarted service, or a second instance in the same group, knows every room.
  The gateway's own room membership is kept in step with `{"op":"join"|"leave"}`, under the
  gateway room name `rtc:ROOM`.
- Signalling: `rtc.offer` {to, sdp}, `rtc.answer` {to, sdp}, `rtc.ice` {to, candidate} are
  relayed to player `to`, with `from` added, when the two share a room.
- Files: `file.offer` announces a file (size, SHA-256, chunk count), `file.accept` /
  `file.reject` answer it, `file.chunk` carries the bytes, `file.ack` reports the result. Chunk
  bytes arrive as MessagePack bin (codec msgpack on the stream) or, from JSON clients, as a
  base64 string; updates are JSON, so the relay always forwards them as base64.

Every failure is an `rtc.error` update to the connection that sent the command, with the
command's correlation_id. Other command types are not this service's: they are acknowledged
and otherwise ignored. Delivery is at-least-once: XACK follows the PUBLISHes, so a crash in
between handles that command again (joins are idempotent, receivers drop duplicate chunks).

Needs python3-redis and python3-msgpack only.
"""
import argparse
import base64
import binascii
import json
import os
import re
import signal
import socket
import sys

import msgpack
import redis

# Bounds. A client message is at most the gateway's --max-message-bytes (64 KiB by default):
# a 16 KiB chunk fits with room to spare in either codec, and its base64 (about 22 KiB) keeps
# each update well under the gateway's per-connection send buffer (1 MiB by default).
MAX_CHUNK_BYTES = 16 * 1024
MAX_CHUNKS = 1024
MAX_FILE_BYTES = MAX_CHUNK_BYTES * MAX_CHUNKS  # 16 MiB
MAX_SDP_CHARS = 32 * 1024
MAX_CANDIDATE_CHARS = 4 * 1024  # the JSON form of an RTCIceCandidateInit, or the bare string
MAX_NAME_CHARS = 255
MAX_REASON_CHARS = 200
MAX_MISSING = 64  # seq numbers a failed file.ack may list
MAX_ROOM_MEMBERS = 16  # a full mesh of peer connections does not go much further
MAX_ROOMS_PER_PLAYER = 8
MAX_PLAYER_ID_CHARS = 128

ROOM_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
FILE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")

# Atomic join: the bound checks and both SADDs in one step, then the members.
# KEYS: room set, player's room set. ARGV: player, room, max members, max rooms.
JOIN_LUA = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then
  if redis.call('SCARD', KEYS[1]) >= tonumber(ARGV[3]) then return {'room_full'} end
  if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then return {'too_many_rooms'} end
  redis.call('SADD', KEYS[1], ARGV[1])
  redis.call('SADD', KEYS[2], ARGV[2])
end
local out = redis.call('SMEMBERS', KEYS[1])
table.insert(out, 1, 'ok')
return out
"""

# Atomic leave: 0 when the player was not in the room, else 1 followed by the members left.
LEAVE_LUA = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return {0} end
redis.call('SREM', KEYS[2], ARGV[2])
local out = redis.call('SMEMBERS', KEYS[1])
table.insert(out, 1, 1)
return out
"""


class Refused(Exception):
    """A command the relay answers with rtc.error {code, message}."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(message):
    return Refused("invalid_payload", message)


def require_str(payload, key, max_chars, pattern=None):
    v = payload.get(key)
    if not isinstance(v, str) or not v or len(v) > max_chars:
        raise invalid(f"{key}: a string of 1-{max_chars} characters expected")
    if pattern is not None and not pattern.match(v):
        raise invalid(f"{key}: does not match {pattern.pattern}")
    return v


def require_int(payload, key, low, high):
    v = payload.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise invalid(f"{key}: an integer in {low}..{high} expected")
    return v


def decode_payload(codec, raw):
    """The command's payload as a dict: JSON text or a MessagePack value (PROTOCOL s. 4)."""
    try:
        if codec == "json":
            value = json.loads(raw)
        elif codec == "msgpack":
            value = msgpack.unpackb(raw, raw=False, strict_map_key=False)
        else:  # protobuf bytes, or any codec a newer gateway adds: not ours to guess
            raise invalid(f"payload codec {codec!r}: send JSON or MessagePack")
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise invalid(f"undecodable {codec} payload ({type(e).__name__})") from None
    if not isinstance(value, dict):
        raise invalid("payload: an object expected")
    return value


def chunk_bytes(value):
    """file.chunk data: MessagePack bin (bytes) or, from JSON clients, standard base64."""
    if isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("data: MessagePack bin or a base64 string expected") from None
    else:
        raise invalid("data: MessagePack bin or a base64 string expected")
    if not 1 <= len(data) <= MAX_CHUNK_BYTES:
        raise invalid(f"data: 1-{MAX_CHUNK_BYTES} bytes per chunk")
    return data


class Relay:
    def __init__(self, r, prefix, file_ttl_s):
        self.r = r
        self.prefix = prefix
        self.file_ttl_s = file_ttl_s
        self.join_script = r.register_script(JOIN_LUA)
        self.leave_script = r.register_script(LEAVE_LUA)

    # -- keys ----------------------------------------------------------------------------------
    def room_key(self, room):
        return f"{self.prefix}:room:{room}"

    def rooms_key(self, player):
        return f"{self.prefix}:player:{player}:rooms"

    def file_key(self, sender, file_id):
        return f"{self.prefix}:file:{sender}:{file_id}"

    def gateway_room(self, room):
        # The gateway's room names are shared by every service: ours carry a prefix.
        return f"{self.prefix}:{room}"

    # -- one command -----------------------------------------------------------------------------
    def handle(self, cmd):
        """The updates to publish for one stream entry, in order ([] when it is not ours)."""
        kind = cmd["type"]
        handler = self.handlers().get(kind)
        if handler is None:
            if kind.startswith(("rtc.", "file.")):
                return [self.error(cmd, Refused("unknown_command", f"no command {kind}"))]
            return []
        try:
            payload = decode_payload(cmd["codec"], cmd["payload"])
            return handler(cmd, payload)
        except Refused as e:
            return [self.error(cmd, e)]

    def handlers(self):
        return {
            "rtc.join": self.join, "rtc.leave": self.leave,
            "rtc.offer": self.signal, "rtc.answer": self.signal, "rtc.ice": self.signal,
            "file.offer": self.file_offer, "file.accept": self.file_reply,
            "file.reject": self.file_reply, "file.chunk": self.file_chunk,
            "file.ack": self.file_reply,
        }

    def join(self, cmd, payload):
        player = cmd["player_id"]
        room = require_str(payload, "room", 64, ROOM_RE)
        got = self.join_script(keys=[self.room_key(room), self.rooms_key(player)],
                               args=[player, room, MAX_ROOM_MEMBERS, MAX_ROOMS_PER_PLAYER])
        status = got[0].decode() if isinstance(got[0], bytes) else got[0]
        if status == "room_full":
            raise Refused("room_full", f"room {room} has {MAX_ROOM_MEMBERS} members already")
        if status == "too_many_rooms":
            raise Refused("too_many_rooms", f"at most {MAX_ROOMS_PER_PLAYER} rooms at once")
        peers = sorted(m.decode() for m in got[1:] if m.decode() != player)
        # The op first: any room update published after it reaches the newcomer too. The
        # notices use player ids from Redis, not the gateway room: a member whose connection
        # dropped and came back is out of the gateway's room until it joins again, but it is
        # still a member here.
        updates = [{"op": "join", "player_id": player, "room": self.gateway_room(room)},
                   self.to_player(cmd, player, "rtc.joined", {"room": room, "peers": peers},
                                  reply=True)]
        if peers:
            updates.append({"player_ids": peers, "type": "rtc.peer_joined",
                            "payload": {"room": room, "player_id": player}})
        return updates

    def leave(self, cmd, payload):
        player = cmd["player_id"]
        room = require_str(payload, "room", 64, ROOM_RE)
        got = self.leave_script(keys=[self.room_key(room), self.rooms_key(player)],
                                args=[player, room])
        if not got[0]:
            raise Refused("not_in_room", f"you are not in room {room}")
        peers = sorted(m.decode() for m in got[1:])
        updates = [{"op": "leave", "player_id": player, "room": self.gateway_room(room)},
                   self.to_player(cmd, player, "rtc.left", {"room": room}, reply=True)]
        if peers:
            updates.append({"player_ids": peers, "type": "rtc.peer_left",
                            "payload": {"room": room, "player_id": player}})
        return updates

    def signal(self, cmd, payload):
        to = self.target(cmd, payload)
        out = {"from": cmd["player_id"]}
        if cmd["type"] == "rtc.ice":
            candidate = payload.get("candidate")
            try:  # from MessagePack it may hold bytes or NaN, which no JSON update can carry
                size = len(json.dumps(candidate, allow_nan=False))
            except (TypeError, ValueError):
                size = None
            if not isinstance(candidate, (str, dict)) or size is None or \
                    size > MAX_CANDIDATE_CHARS:
                raise invalid(f"candidate: a string or a JSON object of at most "
                              f"{MAX_CANDIDATE_CHARS} characters expected")
            out["candidate"] = candidate
        else:
            out["sdp"] = require_str(payload, "sdp", MAX_SDP_CHARS)
        out["room"] = self.shared_room(cmd["player_id"], to)
        return [self.to_player(cmd, to, cmd["type"], out)]

    def file_offer(self, cmd, payload):
        to = self.target(cmd, payload)
        file_id = require_str(payload, "file_id", 64, FILE_ID_RE)
        name = require_str(payload, "name", MAX_NAME_CHARS)
        size = require_int(payload, "size", 1, MAX_FILE_BYTES)
        sha256 = require_str(payload, "sha256", 64, SHA256_RE)
        total = require_int(payload, "total", 1, MAX_CHUNKS)
        if not total <= size <= total * MAX_CHUNK_BYTES:
            raise invalid(f"size {size} cannot be {total} chunks of 1-{MAX_CHUNK_BYTES} bytes")
        room = self.shared_room(cmd["player_id"], to)
        key = self.file_key(cmd["player_id"], file_id)
        with self.r.pipeline(transaction=True) as p:
            p.delete(key)
            p.hset(key, mapping={"to": to, "total": total, "size": size})
            p.expire(key, self.file_ttl_s)
            p.execute()
        return [self.to_player(cmd, to, "file.offer", {
            "from": cmd["player_id"], "room": room, "file_id": file_id, "name": name,
            "size": size, "sha256": sha256, "total": total})]

    def file_chunk(self, cmd, payload):
        to = self.target(cmd, payload)
        file_id = require_str(payload, "file_id", 64, FILE_ID_RE)
        total = require_int(payload, "total", 1, MAX_CHUNKS)
        seq = require_int(payload, "seq", 0, total - 1)
        data = chunk_bytes(payload.get("data"))
        offer = self.offer(cmd["player_id"], file_id, to)
        if int(offer[b"total"]) != total:
            raise invalid(f"total: the offer announced {int(offer[b'total'])} chunks")
        self.shared_room(cmd["player_id"], to)
        self.r.expire(self.file_key(cmd["player_id"], file_id), self.file_ttl_s)  # still alive
        return [self.to_player(cmd, to, "file.chunk", {
            "from": cmd["player_id"], "file_id": file_id, "seq": seq, "total": total,
            "data": base64.b64encode(data).decode("ascii")})]

    def file_reply(self, cmd, payload):
        """file.accept / file.reject / file.ack: the receiver answers the offer's sender."""
        to = self.target(cmd, payload)
        file_id = require_str(payload, "file_id", 64, FILE_ID_RE)
        self.offer(to, file_id, cmd["player_id"])  # an offer from `to` to this player
        self.shared_room(cmd["player_id"], to)
        out = {"from": cmd["player_id"], "file_id": file_id}
        if cmd["type"] == "file.reject" or (cmd["type"] == "file.ack" and "reason" in payload):
            out["reason"] = require_str(payload, "reason", MAX_REASON_CHARS)
        if cmd["type"] == "file.ack":
            ok = payload.get("ok")
            if not isinstance(ok, bool):
                raise invalid("ok: true or false expected")
            out["ok"] = ok
            if "sha256" in payload:
                out["sha256"] = require_str(payload, "sha256", 64, SHA256_RE)
            missing = payload.get("missing", [])
            if not isinstance(missing, list) or len(missing) > MAX_MISSING or not all(
                    isinstance(m, int) and not isinstance(m, bool) and 0 <= m < MAX_CHUNKS
                    for m in missing):
                raise invalid(f"missing: at most {MAX_MISSING} chunk numbers expected")
            if missing:
                out["missing"] = missing
        if cmd["type"] != "file.accept" and (cmd["type"] == "file.reject" or out["ok"]):
            self.r.delete(self.file_key(to, file_id))  # done: no more chunks for it
        return [self.to_player(cmd, to, cmd["type"], out)]

    # -- checks ----------------------------------------------------------------------------------
    def target(self, cmd, payload):
        to = require_str(payload, "to", MAX_PLAYER_ID_CHARS)
        if to == cmd["player_id"]:
            raise invalid("to: another player expected")
        return to

    def shared_room(self, a, b):
        rooms = self.r.sinter(self.rooms_key(a), self.rooms_key(b))
        if not rooms:
            raise Refused("not_in_room", f"you and {b} share no room")
        return min(r.decode() for r in rooms)

    def offer(self, sender, file_id, receiver):
        offer = self.r.hgetall(self.file_key(sender, file_id))
        if not offer or offer.get(b"to", b"").decode() != receiver:
            raise Refused("unknown_file", f"no open offer {file_id} from {sender} to {receiver}")
        return offer

    # -- updates ---------------------------------------------------------------------------------
    def to_player(self, cmd, player, kind, payload, reply=False):
        """To every connection of `player`; a reply carries the command's correlation_id."""
        update = {"player_id": player, "type": kind, "payload": payload}
        if reply and cmd.get("correlation_id"):
            update["correlation_id"] = cmd["correlation_id"]
        return update

    def error(self, cmd, refused):
        update = {"player_id": cmd["player_id"], "type": "rtc.error", "payload": {
            "request": cmd["type"], "code": refused.code, "message": refused.message}}
        if not cmd["connection_id"].startswith("http:"):  # POST /commands: the whole player
            update["connection_id"] = cmd["connection_id"]
        if cmd.get("correlation_id"):
            update["correlation_id"] = cmd["correlation_id"]
        return update


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--redis", default="redis://127.0.0.1:6379")
    ap.add_argument("--command-stream", default="gateway:commands")
    ap.add_argument("--updates-channel", default="ws_updates_channel")
    ap.add_argument("--group", default="rtc-relay")
    ap.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    ap.add_argument("--key-prefix", default="rtc",
                    help="prefix of the Redis keys and of the gateway room names")
    ap.add_argument("--file-ttl", type=int, default=600,
                    help="seconds an unfinished file offer stays open")
    args = ap.parse_args()
    if args.file_ttl < 1:
        ap.error("--file-ttl: at least 1")

    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):  # finish the batch in hand, then exit 0
        signal.signal(sig, lambda *_: stopping.append(True))

    r = redis.Redis.from_url(args.redis)
    try:  # the group sees what is appended after it was first created ("$")
        r.xgroup_create(args.command_stream, args.group, id="$", mkstream=True)
    except redis.ResponseError as e:
        if "BUSYGROUP" not in str(e):
            raise
    relay = Relay(r, args.key_prefix, args.file_ttl)
    print(f"rtc_relay ready group={args.group} consumer={args.consumer}", flush=True)
    start = "0"  # first our own pending entries (a restart finishes them), then new ones: ">"
    while not stopping:
        reply = r.xreadgroup(args.group, args.consumer, {args.command_stream: start},
                             count=100, block=500)
        entries = reply[0][1] if reply else []
        if start == "0" and not entries:
            start = ">"
        for entry_id, fields in entries:
            if fields:  # {} when the entry was trimmed away before it was handled
                cmd = {k.decode(): v for k, v in fields.items()}
                for k in ("type", "codec", "correlation_id", "player_id", "connection_id"):
                    cmd[k] = cmd.get(k, b"").decode("utf-8", "replace")
                try:
                    updates = relay.handle(cmd)
                except redis.RedisError:
                    raise  # Redis away: exit, a supervisor restarts us, the entry stays pending
                except Exception as e:  # a bug must not make one entry a poison pill
                    print(f"rtc_relay: entry {entry_id.decode()}: {type(e).__name__}: {e}",
                          file=sys.stderr, flush=True)
                    updates = [relay.error(cmd, Refused("internal_error", "not handled"))]
                for update in updates:
                    r.publish(args.updates_channel,
                              json.dumps(update, separators=(",", ":"), allow_nan=False))
            r.xack(args.command_stream, args.group, entry_id)
    print("rtc_relay stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
