#!/usr/bin/env python3
"""gatehouse-server's WebSocket endpoint against RFC 6455 (and RFC 7692 permessage-deflate),
seen by outside clients (docs/protocol.md s. 3, 6.1).

What it checks:
- python `websockets`: welcome, command -> ack, a fragmented text message -> ack, ping -> pong,
  close 1000 echoed with 1000; with --ws-compression it negotiates permessage-deflate and the
  message limit applies after decompression (N bytes acked, N+1 closed with 1009);
- Autobahn's asyncio client: welcome and ack; with --ws-compression its PerMessageDeflateOffer
  is accepted and a compressed command is acked; without the flag the offer is declined and the
  session works uncompressed;
- raw frames from this file's own encoder: unmasked frame, reserved opcodes, RSV bits without
  an extension, a 126-byte ping, a fragmented ping, continuation without a start, a new message
  inside a fragmented one, close payload of 1 byte, reserved or out-of-range close codes, a
  close reason that is not UTF-8 -> 1002 (1007 for the UTF-8 one); invalid UTF-8 text -> 1007
  (also when split over fragments); UTF-8 split inside a character across fragments -> ack; a
  ping between fragments -> pong and ack; a text message of exactly --max-message-bytes acked,
  one byte more -> 1009 (whole or fragmented);
- the upgrade: a bad or missing Sec-WebSocket-Key -> 400; a bad or missing Version -> 400 or
  426 naming version 13 (RFC 6455 s. 4.2.2 allows either), a plain GET on /ws/... -> 426 with Upgrade, no 101 for POST; browsers'
  `Connection: keep-alive, Upgrade` and `Upgrade: WebSocket` upgrade.

Usage: test_ws_conformance.py PATH/TO/gatehouse-server [unittest args]

Every wait is bounded (the harness's 5 s receive limit, or shorter where stated).
"""

import asyncio
import base64
import json
import os
import socket
import struct

import websockets
from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (PerMessageDeflateOffer, PerMessageDeflateResponse,
                                         PerMessageDeflateResponseAccept)

import gatehouse_harness as h
from gatehouse_harness import Client, RawWs
from test_http11 import RawHttp

WAIT_S = h.RECV_TIMEOUT_S

# ---------------------------------------------------------------------------------------------
# Frames, encoded here (RFC 6455 s. 5.2), including the malformed ones.

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(opcode, payload=b"", fin=True, rsv=0, mask=True):
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack(">Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_frame(code=None, reason=b""):
    return frame(OP_CLOSE, b"" if code is None else struct.pack(">H", code) + reason)


def command_json(cid, payload=None, size=None):
    body = json.dumps({"type": "player_action", "payload": payload, "correlation_id": cid},
                      separators=(",", ":"), ensure_ascii=False).encode()
    if size is not None:
        assert size >= len(body), (size, len(body))
        body += b" " * (size - len(body))  # insignificant whitespace: still one JSON value
    return body


# ---------------------------------------------------------------------------------------------
# python `websockets`


class WebsocketsClient(h.ServerTestCase):
    async def test_welcome_command_fragments_ping_close(self):
        c = await Client.player(self.server, "ws-lib")
        try:
            self.assertEqual(c.welcome["type"], "welcome", c.welcome)
            ack = await c.command(payload={"n": 1}, correlation_id="lib-1")
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "lib-1"), ack)
            text = command_json("lib-frag", {"text": "fragmented \u00e9"}).decode()
            await c.ws.send(iter([text[:10], text[10:25], text[25:]]))
            ack = await c.recv()
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "lib-frag"), ack)
            pong = await c.ws.ping(b"are you there")
            await asyncio.wait_for(pong, WAIT_S)
            await asyncio.wait_for(c.ws.close(1000, "done"), WAIT_S)
            rcvd = c.ws.close_rcvd
            self.assertIsNotNone(rcvd, "no close frame from the server")
            self.assertEqual(rcvd.code, 1000, rcvd)
        finally:
            await c.close()


class WebsocketsCompression(h.ServerTestCase):
    MAX = 1024

    @classmethod
    def server_args(cls):
        return ["--ws-compression", "--max-message-bytes", str(cls.MAX)]

    async def connect(self, sub):
        ws = await websockets.connect(
            self.server.ws_base + "/ws/player/" + self.server.token(sub),
            compression="deflate", open_timeout=WAIT_S, close_timeout=2, max_size=None,
            ping_interval=None)
        names = [type(e).__name__ for e in ws.extensions]
        self.assertEqual(names, ["PerMessageDeflate"], "permessage-deflate not negotiated")
        welcome = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
        self.assertEqual(welcome["type"], "welcome", welcome)
        return ws

    async def test_compressed_commands_and_limit_after_inflate(self):
        ws = await self.connect("deflate-lib")
        try:
            await ws.send(command_json("z-1", {"text": "x" * 200}).decode())
            ack = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "z-1"), ack)
            # Exactly the limit once inflated (a few dozen bytes on the wire): accepted.
            await ws.send(command_json("z-max", "a" * 10, size=self.MAX).decode())
            ack = json.loads(await asyncio.wait_for(ws.recv(), WAIT_S))
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "z-max"), ack)
            # One byte more once inflated: 1009, however small it was compressed.
            await ws.send(command_json("z-over", "a" * 10, size=self.MAX + 1).decode())
            with self.assertRaises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT_S)
            self.assertEqual(ws.close_code, 1009)
        finally:
            await ws.close()

    async def test_compression_bomb_is_1009(self):
        ws = await self.connect("deflate-bomb")
        try:
            await ws.send(command_json("bomb", "a" * (4 << 20)).decode())  # 4 MiB inflated
            with self.assertRaises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), WAIT_S)
            self.assertEqual(ws.close_code, 1009)
        finally:
            await ws.close()


# ---------------------------------------------------------------------------------------------
# Autobahn's client (python3-autobahn, asyncio flavour)


class _AutobahnProtocol(WebSocketClientProtocol):
    def onOpen(self):
        if not self.factory.opened.done():
            self.factory.opened.set_result(self)

    def onMessage(self, payload, isBinary):
        self.factory.inbox.put_nowait((payload, isBinary))

    def onClose(self, wasClean, code, reason):
        if not self.factory.opened.done():
            self.factory.opened.set_exception(ConnectionError(f"closed: {code} {reason}"))
        if not self.factory.closed.done():
            self.factory.closed.set_result(code)


async def autobahn_connect(server, sub, offer_deflate):
    loop = asyncio.get_running_loop()
    url = f"ws://127.0.0.1:{server.port}/ws/player/{server.token(sub)}"
    factory = WebSocketClientFactory(url)
    factory.protocol = _AutobahnProtocol
    factory.opened, factory.closed = loop.create_future(), loop.create_future()
    factory.inbox = asyncio.Queue()
    options = dict(openHandshakeTimeout=WAIT_S, closeHandshakeTimeout=2, autoPingInterval=0)
    if offer_deflate:
        options["perMessageCompressionOffers"] = [
            PerMessageDeflateOffer(accept_no_context_takeover=True, accept_max_window_bits=True)]
        options["perMessageCompressionAccept"] = (
            lambda response: PerMessageDeflateResponseAccept(response)
            if isinstance(response, PerMessageDeflateResponse) else None)
    factory.setProtocolOptions(**options)
    transport, _ = await asyncio.wait_for(
        loop.create_connection(factory, "127.0.0.1", server.port), WAIT_S)
    proto = await asyncio.wait_for(factory.opened, WAIT_S)
    return factory, proto, transport


async def autobahn_recv(factory):
    payload, is_binary = await asyncio.wait_for(factory.inbox.get(), WAIT_S)
    assert not is_binary, "binary frame on a JSON connection"
    return json.loads(payload)


class AutobahnMixin:
    async def run_session(self, offer_deflate, expect_deflate):
        factory, proto, transport = await autobahn_connect(self.server, "autobahn", offer_deflate)
        try:
            in_use = [type(e).__name__ for e in proto.websocket_extensions_in_use]
            self.assertEqual(in_use, ["PerMessageDeflate"] if expect_deflate else [], in_use)
            welcome = await autobahn_recv(factory)
            self.assertEqual(welcome["type"], "welcome", welcome)
            self.assertEqual(welcome["payload"]["player_id"], "autobahn", welcome)
            # Compressible on purpose: with the extension it travels deflated.
            proto.sendMessage(command_json("ab-1", {"text": "y" * 300}), isBinary=False)
            ack = await autobahn_recv(factory)
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "ab-1"), ack)
            proto.sendClose(1000)
            code = await asyncio.wait_for(factory.closed, WAIT_S)
            self.assertEqual(code, 1000)
        finally:
            transport.close()


class AutobahnPlain(AutobahnMixin, h.ServerTestCase):
    async def test_session_without_offer(self):
        await self.run_session(offer_deflate=False, expect_deflate=False)

    async def test_deflate_offer_declined_without_flag(self):
        await self.run_session(offer_deflate=True, expect_deflate=False)


class AutobahnCompressed(AutobahnMixin, h.ServerTestCase):
    @classmethod
    def server_args(cls):
        return ["--ws-compression"]

    async def test_deflate_negotiated_and_command_acked(self):
        await self.run_session(offer_deflate=True, expect_deflate=True)

    async def test_session_without_offer(self):
        await self.run_session(offer_deflate=False, expect_deflate=False)


# ---------------------------------------------------------------------------------------------
# Raw frames


class RawFrames(h.ServerTestCase):
    MAX = 1024

    @classmethod
    def server_args(cls):
        return ["--max-message-bytes", str(cls.MAX)]

    def open(self, sub="raw"):
        rw = RawWs(self.server.port, "/ws/player/" + self.server.token(sub))
        self.assertEqual(rw.status, 101, rw.body)
        welcome = rw.recv_message()
        self.assertEqual(json.loads(welcome[1])["type"], "welcome", welcome)
        return rw

    def expect_ack(self, rw, cid):
        m = rw.recv_message()
        self.assertIsNotNone(m, "connection closed instead of an ack")
        self.assertNotEqual(m[0], "close", f"closed with {m[1]} instead of an ack")
        env = json.loads(m[1])
        self.assertEqual((env["type"], env.get("correlation_id")), ("ack", cid), env)

    def expect_close(self, rw, code, data):
        rw.sock.sendall(data)
        got = rw.wait_close()
        self.assertEqual(got, code, "server's close code (None: no close frame, just EOF)")
        # After its close frame the server ends the TCP connection (RFC 6455 s. 7.1.1).
        rw.sock.settimeout(3.0)
        try:
            while rw.sock.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout) as e:
            if isinstance(e, socket.timeout):
                self.fail("TCP connection still open 3 s after the close frame")

    def check_violation(self, code, data):
        rw = self.open()
        try:
            self.expect_close(rw, code, data)
        finally:
            rw.close()

    def test_protocol_errors_are_1002(self):
        text = command_json("never")
        cases = {
            "unmasked frame": frame(OP_TEXT, text, mask=False),
            "reserved data opcode 0x3": frame(0x3, b"x"),
            "reserved control opcode 0xB": frame(0xB, b""),
            "RSV1 without an extension": frame(OP_TEXT, text, rsv=4),
            "RSV2": frame(OP_TEXT, text, rsv=2),
            "RSV3": frame(OP_TEXT, text, rsv=1),
            "ping with 126-byte payload": frame(OP_PING, b"p" * 126),
            "fragmented ping": frame(OP_PING, b"a", fin=False) + frame(OP_CONT, b"b"),
            "continuation without start": frame(OP_CONT, text),
            "new message inside a fragmented one": frame(OP_TEXT, text[:5], fin=False)
                                                    + frame(OP_TEXT, text[5:]),
            "close with 1-byte payload": frame(OP_CLOSE, b"\x03"),
        }
        for code in (0, 999, 1004, 1005, 1006, 1015, 5000, 65535):
            cases[f"close code {code}"] = close_frame(code)
        for label, data in cases.items():
            with self.subTest(label):
                self.check_violation(1002, data)

    def test_invalid_utf8_is_1007(self):
        bad = b'{"type":"t","payload":"\xc3\x28","correlation_id":"u"}'
        cases = {
            "invalid UTF-8 text": frame(OP_TEXT, bad),
            "invalid UTF-8 across fragments": frame(OP_TEXT, bad[:24], fin=False)
                                               + frame(OP_CONT, bad[24:]),
            "truncated sequence at the end": frame(OP_TEXT, b'{"type":"t","payload":"\xe2\x82'),
            "surrogate (CESU) in text": frame(OP_TEXT, b'{"type":"t","payload":"\xed\xa0\x80"}'),
        }
        for label, data in cases.items():
            with self.subTest(label):
                self.check_violation(1007, data)
        # A close reason that is not UTF-8 fails the connection too (s. 8.1); Autobahn's case
        # 7.5.1 takes 1007 or 1002 for it.
        with self.subTest("close reason not UTF-8"):
            rw = self.open()
            try:
                rw.sock.sendall(close_frame(1000, b"\xff\xfe"))
                self.assertIn(rw.wait_close(), (1002, 1007))
            finally:
                rw.close()

    def test_utf8_split_inside_a_character_is_fine(self):
        text = command_json("utf-split", "h\u00e9llo \u20ac \U0001F600")
        cut = text.index("\u20ac".encode()) + 1  # inside the 3-byte euro sign
        cut2 = text.index("\U0001F600".encode()) + 2  # inside the 4-byte emoji
        rw = self.open()
        try:
            rw.sock.sendall(frame(OP_TEXT, text[:cut], fin=False)
                            + frame(OP_CONT, text[cut:cut2], fin=False)
                            + frame(OP_CONT, text[cut2:]))
            self.expect_ack(rw, "utf-split")
        finally:
            rw.close()

    def test_ping_between_fragments(self):
        text = command_json("ping-inside")
        rw = self.open()
        try:
            rw.sock.sendall(frame(OP_TEXT, text[:10], fin=False) + frame(OP_PING, b"mid")
                            + frame(OP_CONT, text[10:]))
            f = rw.recv_frame()
            self.assertIsNotNone(f, "closed")
            self.assertEqual((f[1], f[2]), (OP_PONG, b"mid"), f"first frame back: {f}")
            self.expect_ack(rw, "ping-inside")
        finally:
            rw.close()

    def test_ping_payload_echoed(self):
        rw = self.open()
        try:
            payload = bytes(range(125))
            rw.sock.sendall(frame(OP_PING, payload))
            f = rw.recv_frame()
            self.assertEqual((f[0], f[1], f[2]), (True, OP_PONG, payload), f)
        finally:
            rw.close()

    def test_message_size_limit(self):
        rw = self.open()
        try:
            rw.sock.sendall(frame(OP_TEXT, command_json("max", "x", size=self.MAX)))
            self.expect_ack(rw, "max")
            half = self.MAX // 2
            exact = command_json("max-frag", "x", size=self.MAX)
            rw.sock.sendall(frame(OP_TEXT, exact[:half], fin=False)
                            + frame(OP_CONT, exact[half:]))
            self.expect_ack(rw, "max-frag")
        finally:
            rw.close()
        self.check_violation(1009, frame(OP_TEXT, command_json("over", "x", size=self.MAX + 1)))
        over = command_json("over-frag", "x", size=self.MAX + 1)
        self.check_violation(1009, frame(OP_TEXT, over[:100], fin=False)
                             + frame(OP_CONT, over[100:700], fin=False)
                             + frame(OP_CONT, over[700:]))


# ---------------------------------------------------------------------------------------------
# The opening handshake


class Handshake(h.ServerTestCase):
    def upgrade(self, path=None, method="GET", drop=(), **replace):
        """Sends an upgrade request with the named headers replaced (None drops one)."""
        p = self.server.port
        path = path or "/ws/player/" + self.server.token("hs")
        headers = {"Host": f"127.0.0.1:{p}", "Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                   "Sec-WebSocket-Version": "13"}
        for k, v in replace.items():
            k = k.replace("_", "-")
            if v is None:
                headers.pop(k, None)
            else:
                headers[k] = v
        raw = f"{method} {path} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        c = RawHttp(p)
        try:
            c.send(raw)
            return c.read_response()
        finally:
            c.close()

    def test_bad_key_is_400(self):
        for label, key in {"not base64 of 16 bytes": "abc",
                           "12 bytes": base64.b64encode(b"x" * 12).decode(),
                           "missing": None}.items():
            with self.subTest(label):
                r = self.upgrade(Sec_WebSocket_Key=key)
                self.assertEqual(r.status, 400, r)

    def test_bad_version_is_refused_naming_13(self):
        # RFC 6455 s. 4.2.2: "an appropriate HTTP error code (such as 426 Upgrade Required)" and
        # the version(s) the server understands; s. 4.4's example answers 400. Either is right.
        for label, version in {"8": "8", "14": "14", "garbage": "x", "missing": None}.items():
            with self.subTest(label):
                r = self.upgrade(Sec_WebSocket_Version=version)
                self.assertIn(r.status, (400, 426), r)
                if version is not None:
                    self.assertIn("13", r.header("sec-websocket-version") or "", r)

    def test_plain_get_is_426(self):
        r = self.upgrade(Upgrade=None, Connection=None, Sec_WebSocket_Key=None,
                         Sec_WebSocket_Version=None)
        self.assertEqual(r.status, 426, r)
        self.assertIn("websocket", (r.header("upgrade") or "").lower(), r)

    def test_post_is_not_upgraded(self):
        r = self.upgrade(method="POST")
        self.assertNotEqual(r.status, 101, r)
        self.assertTrue(400 <= r.status < 500, r)

    def test_browser_style_headers_upgrade(self):
        for label, hdrs in {"Connection: keep-alive, Upgrade": {"Connection": "keep-alive, Upgrade"},
                            "Upgrade: WebSocket": {"Upgrade": "WebSocket"},
                            "Connection: upgrade": {"Connection": "upgrade"}}.items():
            with self.subTest(label):
                r = self.upgrade(**hdrs)
                self.assertEqual(r.status, 101, r)


if __name__ == "__main__":
    h.run_main()
