#!/usr/bin/python3
"""rtc_client: a peer of the rtc_relay example, on MessagePack over gatehouse's WebSocket.

As a program it is one of the example's two peers (docs/examples/rtc-relay.md):

    rtc_client.py --server ws://127.0.0.1:8080 --player bob --room lobby receive --out DIR
    rtc_client.py --server ws://127.0.0.1:8080 --player alice --room lobby send --to bob FILE

Both join the room; the sender waits for its peer, makes the offer/answer/ICE exchange and
sends FILE in chunks; the receiver answers, reassembles the file (in any chunk order, dropping
duplicates), checks its size and SHA-256 against the offer, acknowledges it and writes it to
DIR. Exit 0 when the transfer was confirmed on both sides. A token comes from --token, or is
minted for --player from the server's JWT secret in $GATEHOUSE_JWT_SECRET (a development
shortcut: in production a login service hands out tokens, docs/protocol.md section 2).

Python has no WebRTC stack here: the SDP and ICE texts it sends are placeholders, which the
relay passes on unread, exactly as it would pass a browser's RTCPeerConnection descriptions.

As a module it offers `Peer` (connect, commands with acks, waiting for updates) and
`send_file` / `receive_file`, which test_rtc_relay.py uses. Needs python3-websockets and
python3-msgpack.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import random
import secrets
import sys
import time

import msgpack
import websockets

CHUNK_BYTES = 16 * 1024  # the relay's largest chunk (rtc_relay_service.MAX_CHUNK_BYTES)
RECV_TIMEOUT_S = 10.0
RATE_LIMIT_RETRIES = 20


class CommandRefused(Exception):
    """The gateway answered a command with an error frame (not the relay: that is rtc.error)."""


def mint_token(secret, player, ttl_s=3600):
    """An HS256 access token for `player` (docs/protocol.md section 2), for development."""
    def b64url(raw):
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    now = int(time.time())
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64url(json.dumps({"sub": player, "iat": now, "exp": now + ttl_s}).encode())
    sig = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64url(sig)}"


class Peer:
    """One player connection with the msgpack codec.

    A reader task takes every frame: acks and gateway errors settle the command that is
    waiting for them, everything else (the relay's updates) goes to an inbox that `expect`
    searches in arrival order. One coroutine at a time may call `command`.
    """

    def __init__(self, ws):
        self.ws = ws
        self.player_id = None
        self.inbox = []
        self.arrived = asyncio.Event()
        self.answers = {}
        self.closed = None
        self.seq = 0
        self.reader = None

    @classmethod
    async def connect(cls, server, token):
        """`server`: ws://HOST:PORT (or wss://). The token travels in the path."""
        ws = await websockets.connect(f"{server}/ws/player/{token}",
                                      subprotocols=["gatehouse.msgpack"],
                                      open_timeout=RECV_TIMEOUT_S, close_timeout=2,
                                      max_size=None, ping_interval=None)
        peer = cls(ws)
        welcome = msgpack.unpackb(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S), raw=False)
        if welcome.get("type") != "welcome":
            await ws.close()
            raise CommandRefused(f"expected a welcome, got {welcome!r:.200}")
        peer.player_id = welcome["payload"]["player_id"]
        peer.reader = asyncio.create_task(peer._read())
        return peer

    async def _read(self):
        try:
            async for frame in self.ws:
                env = msgpack.unpackb(frame, raw=False) if isinstance(frame, bytes) \
                    else json.loads(frame)
                waiter = self.answers.get(env.get("correlation_id"))
                if env.get("type") in ("ack", "error") and waiter and not waiter.done():
                    waiter.set_result(env)
                else:
                    self.inbox.append(env)
                    self.arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.closed = self.ws.close_code
            self.arrived.set()
            for waiter in self.answers.values():
                if not waiter.done():
                    waiter.set_exception(CommandRefused("connection closed"))

    async def close(self):
        await self.ws.close()
        if self.reader:
            await asyncio.wait_for(self.reader, RECV_TIMEOUT_S)

    def next_id(self, kind):
        self.seq += 1
        return f"{kind}-{self.seq}-{secrets.token_hex(3)}"

    async def command(self, kind, payload, correlation_id=None):
        """Sends a command and waits for the gateway's ack (the command is on the bus).
        `rate_limited` is retried after a pause; any other gateway error raises."""
        cid = correlation_id or self.next_id(kind)
        frame = msgpack.packb({"type": kind, "payload": payload, "correlation_id": cid},
                              use_bin_type=True)
        for attempt in range(RATE_LIMIT_RETRIES):
            waiter = asyncio.get_running_loop().create_future()
            self.answers[cid] = waiter
            await self.ws.send(frame)
            try:
                answer = await asyncio.wait_for(waiter, RECV_TIMEOUT_S)
            finally:
                self.answers.pop(cid, None)
            if answer["type"] == "ack":
                return cid
            code = (answer.get("payload") or {}).get("code")
            if code != "rate_limited":
                raise CommandRefused(f"{kind}: gateway error {code}")
            await asyncio.sleep(0.05 * (attempt + 1))
        raise CommandRefused(f"{kind}: still rate_limited after {RATE_LIMIT_RETRIES} tries")

    async def expect(self, match, timeout=RECV_TIMEOUT_S, what="update"):
        """Removes and returns the first update (in arrival order) for which match(u) holds."""
        deadline = time.monotonic() + timeout
        while True:
            for i, env in enumerate(self.inbox):
                if match(env):
                    return self.inbox.pop(i)
            left = deadline - time.monotonic()
            if left <= 0 or self.closed is not None:
                seen = [e.get("type") for e in self.inbox]
                raise TimeoutError(f"{self.player_id}: no {what} within {timeout} s "
                                   f"(inbox: {seen}, closed: {self.closed})")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def request(self, kind, payload, answer_type, timeout=RECV_TIMEOUT_S):
        """A command whose answer is an update with its correlation_id (rtc.joined, rtc.left)
        or an rtc.error. Returns the update."""
        cid = await self.command(kind, payload)
        return await self.expect(lambda e: e.get("correlation_id") == cid and
                                 e.get("type") in (answer_type, "rtc.error"), timeout,
                                 f"{answer_type} for {cid}")

    async def join(self, room):
        """Joins `room`; the peers already in it. Raises on rtc.error."""
        got = await self.request("rtc.join", {"room": room}, "rtc.joined")
        if got["type"] == "rtc.error":
            raise CommandRefused(f"rtc.join {room}: {got['payload']}")
        return got["payload"]["peers"]

    async def leave(self, room):
        got = await self.request("rtc.leave", {"room": room}, "rtc.left")
        if got["type"] == "rtc.error":
            raise CommandRefused(f"rtc.leave {room}: {got['payload']}")

    def from_(self, kind, sender, **fields):
        """A matcher for update `kind` from player `sender` (and payload fields)."""
        def match(env):
            p = env.get("payload")
            return env.get("type") == kind and isinstance(p, dict) and \
                p.get("from") == sender and all(p.get(k) == v for k, v in fields.items())
        return match


def chunks_of(data, chunk_bytes=CHUNK_BYTES):
    return [data[i:i + chunk_bytes] for i in range(0, len(data), chunk_bytes)]


async def send_file(peer, to, data, name, chunk_bytes=CHUNK_BYTES, order=None,
                    timeout=RECV_TIMEOUT_S):
    """Offers `data` to `to`, sends it in chunks once accepted (in `order`, a list of chunk
    numbers, which may repeat some; default in sequence), and returns the receiver's file.ack
    payload, or the file.reject payload."""
    parts = chunks_of(data, chunk_bytes)
    file_id = secrets.token_hex(8)
    await peer.command("file.offer", {
        "to": to, "file_id": file_id, "name": name, "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(), "total": len(parts)})
    answer = await peer.expect(
        lambda e: e.get("type") in ("file.accept", "file.reject") and
        (e.get("payload") or {}).get("file_id") == file_id, timeout, f"answer to {file_id}")
    if answer["type"] == "file.reject":
        return answer["payload"]
    for seq in order if order is not None else range(len(parts)):
        # Bytes, so MessagePack bin: the gateway passes the payload to the stream unchanged.
        await peer.command("file.chunk", {"to": to, "file_id": file_id, "seq": seq,
                                          "total": len(parts), "data": parts[seq]})
    ack = await peer.expect(peer.from_("file.ack", to, file_id=file_id), timeout,
                            f"file.ack for {file_id}")
    return ack["payload"]


async def receive_file(peer, sender=None, timeout=RECV_TIMEOUT_S):
    """Waits for a file.offer (from `sender` if given), accepts it, reassembles the chunks in
    whatever order they come (a chunk seen twice counts once), checks size and SHA-256, and
    acknowledges. Returns (offer payload, bytes); raises ValueError when the check failed (the
    sender got file.ack ok=false first)."""
    offer = (await peer.expect(
        lambda e: e.get("type") == "file.offer" and
        (sender is None or e["payload"].get("from") == sender), timeout, "file.offer"))["payload"]
    src, file_id, total = offer["from"], offer["file_id"], offer["total"]
    await peer.command("file.accept", {"to": src, "file_id": file_id})
    parts = {}
    deadline = time.monotonic() + timeout
    while len(parts) < total:
        left = deadline - time.monotonic()
        try:
            chunk = (await peer.expect(peer.from_("file.chunk", src, file_id=file_id),
                                       max(left, 0.0), f"chunks of {file_id}"))["payload"]
        except TimeoutError:
            missing = [s for s in range(total) if s not in parts][:64]
            await peer.command("file.ack", {"to": src, "file_id": file_id, "ok": False,
                                            "reason": "timeout", "missing": missing})
            raise
        if chunk["total"] == total and 0 <= chunk["seq"] < total:
            parts.setdefault(chunk["seq"], base64.b64decode(chunk["data"]))
    data = b"".join(parts[s] for s in range(total))
    digest = hashlib.sha256(data).hexdigest()
    problem = None
    if len(data) != offer["size"]:
        problem = f"size {len(data)}, offer said {offer['size']}"
    elif digest != offer["sha256"]:
        problem = "sha256 mismatch"
    ack = {"to": src, "file_id": file_id, "ok": problem is None, "sha256": digest}
    if problem:
        ack["reason"] = problem
    await peer.command("file.ack", ack)
    if problem:
        raise ValueError(f"file {file_id} from {src}: {problem}")
    return offer, data


# ---------------------------------------------------------------------------------------------
# The program: the example's two peers.

PLACEHOLDER_SDP = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=rtc_client {}\r\nt=0 0\r\n"


def say(text):
    print(text, flush=True)


async def wait_for_peer(peer, room, peers, other, timeout):
    if other in peers:
        return
    await peer.expect(lambda e: e.get("type") == "rtc.peer_joined" and
                      e["payload"] == {"room": room, "player_id": other}, timeout,
                      f"{other} joining {room}")


async def run_send(peer, args):
    with open(args.file, "rb") as f:
        data = f.read()
    peers = await peer.join(args.room)
    say(f"joined {args.room} peers={peers}")
    await wait_for_peer(peer, args.room, peers, args.to, args.timeout)
    await peer.command("rtc.offer", {"to": args.to, "sdp": PLACEHOLDER_SDP.format("offer")})
    answer = await peer.expect(peer.from_("rtc.answer", args.to), args.timeout, "rtc.answer")
    say(f"answer from {args.to}: {len(answer['payload']['sdp'])} characters of SDP")
    await peer.command("rtc.ice", {"to": args.to, "candidate": {
        "candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host",
        "sdpMid": "0", "sdpMLineIndex": 0}})
    order = list(range(len(chunks_of(data))))
    if args.shuffle:
        random.shuffle(order)
    ack = await send_file(peer, args.to, data, os.path.basename(args.file), order=order,
                          timeout=args.timeout)
    say(f"file.ack {json.dumps(ack, sort_keys=True)}")
    return 0 if ack.get("ok") else 1


async def run_receive(peer, args):
    peers = await peer.join(args.room)
    say(f"joined {args.room} peers={peers}")
    offer = await peer.expect(lambda e: e.get("type") == "rtc.offer", args.timeout, "rtc.offer")
    src = offer["payload"]["from"]
    await peer.command("rtc.answer", {"to": src, "sdp": PLACEHOLDER_SDP.format("answer")})
    await peer.expect(peer.from_("rtc.ice", src), args.timeout, "rtc.ice")
    say(f"signalling with {src} done")
    meta, data = await receive_file(peer, src, args.timeout)
    # Only the base name of what the sender suggested: never a path it chose.
    name = os.path.basename(meta["name"]) or meta["file_id"]
    path = os.path.join(args.out, name)
    with open(path, "wb") as f:
        f.write(data)
    say(f"received {path} {len(data)} bytes sha256={meta['sha256']}")
    return 0


async def run(args):
    token = args.token
    if not token:
        secret = os.environ.get("GATEHOUSE_JWT_SECRET")
        if not args.player or not secret:
            raise SystemExit("rtc_client: give --token, or --player with $GATEHOUSE_JWT_SECRET")
        token = mint_token(secret, args.player)
    peer = await Peer.connect(args.server, token)
    try:
        return await (run_send(peer, args) if args.mode == "send" else run_receive(peer, args))
    finally:
        await peer.close()


def main():
    ap = argparse.ArgumentParser(description="A peer of the rtc_relay example.")
    ap.add_argument("--server", default="ws://127.0.0.1:8080")
    ap.add_argument("--token", help="an access token (else minted, see --player)")
    ap.add_argument("--player", help="player id to mint a token for with $GATEHOUSE_JWT_SECRET")
    ap.add_argument("--room", default="lobby")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds for each wait")
    sub = ap.add_subparsers(dest="mode", required=True)
    send = sub.add_parser("send", help="offer FILE to --to and send it")
    send.add_argument("--to", required=True)
    send.add_argument("--shuffle", action="store_true", help="send the chunks out of order")
    send.add_argument("file")
    receive = sub.add_parser("receive", help="receive one file into --out")
    receive.add_argument("--out", default=".")
    args = ap.parse_args()
    try:
        return asyncio.run(run(args))
    except (CommandRefused, TimeoutError, ValueError, OSError) as e:
        print(f"rtc_client: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
