#!/usr/bin/env python3
"""examples/standalone_server end to end: the team server built on the library, on real loopback
sockets.

Usage: test_standalone_server.py PATH/TO/gatehouse-example-standalone-server

Checks, as a client and an operator see them: the team's own route (GET /kitchen), its own
codec chosen by subprotocol (gatehouse.netstring; the welcome, acks, errors and updates all
come back in it), its own bus (the ack's stream_id is the journal's entry number, which
continues after the lines already in the file; the command is a line of the journal with
docs/protocol.md section 4's fields), its own service (order.placed / order.rejected with the
command's correlation_id), the built-in JSON codec beside it, and a graceful SIGTERM (1001,
exit 0). Netstrings are encoded and decoded here independently of the server's code.
"""

import asyncio
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "server"))

import websockets  # noqa: E402
from gatehouse_harness import mint_jwt, player_claims  # noqa: E402

BINARY = ""
READY_TIMEOUT_S = 10.0
RECV_TIMEOUT_S = 5.0
SECRET = "standalone-server-test-secret"


def netstrings(*fields):
    out = b""
    for f in fields:
        f = f.encode() if isinstance(f, str) else f
        out += str(len(f)).encode() + b":" + f + b","
    return out


def parse_netstrings(data):
    fields = []
    while data:
        head, sep, rest = data.partition(b":")
        if not sep or not head.isdigit():
            raise AssertionError(f"not a netstring: {data!r}")
        n = int(head)
        if rest[n:n + 1] != b",":
            raise AssertionError(f"netstring without its comma: {data!r}")
        fields.append(rest[:n])
        data = rest[n + 1:]
    return fields


def decode(frame):
    """(type, correlation_id or None, payload) of a netstring envelope."""
    if not isinstance(frame, bytes):
        raise AssertionError(f"netstring connection got a text frame: {frame!r}")
    fields = parse_netstrings(frame)
    if len(fields) != 3:
        raise AssertionError(f"want 3 netstrings, got {fields!r}")
    type_, corr, payload = (f.decode() for f in fields)
    return type_, corr or None, json.loads(payload) if payload else None


class EmbedServer:
    def __init__(self, journal):
        self.out = tempfile.TemporaryFile()
        self.err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [BINARY, "--listen", "127.0.0.1:0", "--jwt-secret", SECRET, "--journal", journal],
            stdin=subprocess.DEVNULL, stdout=self.out, stderr=self.err)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.out.seek(0)
            line = self.out.read().decode()
            if line.endswith("\n"):
                prefix = "standalone_server ready listen="
                if not line.startswith(prefix):
                    raise AssertionError(f"unexpected ready line {line!r}")
                self.address = line[len(prefix):].strip()
                return
            time.sleep(0.02)
        self.kill()
        raise AssertionError(f"no ready line; stderr: {self.stderr()}")

    def stderr(self):
        self.err.seek(0)
        return self.err.read().decode(errors="replace")[-2000:]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=8)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


def http_get(address, path):
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=RECV_TIMEOUT_S)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


async def recv_two(ws):
    """The ack and the service's answer, in whichever order they came (they travel apart)."""
    got = {}
    for _ in range(2):
        type_, corr, payload = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        got[type_] = (corr, payload)
    return got


class EmbedTest(unittest.IsolatedAsyncioTestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.journal = os.path.join(self.dir.name, "orders.jsonl")
        # Two lines from an earlier run: entry numbers must continue after them.
        with open(self.journal, "w") as f:
            f.write('{"entry":1}\n{"entry":2}\n')
        self.server = EmbedServer(self.journal)

    def tearDown(self):
        self.server.kill()
        self.dir.cleanup()

    async def test_route_codec_bus_and_service(self):
        address = self.server.address
        status, body = http_get(address, "/kitchen")
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body), {"journal_entries": 0, "orders_placed": 0})

        token = mint_jwt(SECRET, player_claims("chef-7"))
        ws = await websockets.connect(f"ws://{address}/ws/player/{token}",
                                      subprotocols=["gatehouse.netstring"],
                                      open_timeout=RECV_TIMEOUT_S, ping_interval=None)
        self.assertEqual(ws.subprotocol, "gatehouse.netstring")
        type_, _, welcome = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        self.assertEqual(type_, "welcome")
        self.assertEqual(welcome["codec"], "netstring")
        self.assertEqual(welcome["player_id"], "chef-7")

        await ws.send(netstrings("order", "o-1", '{"dish":"soup","qty":2}'))
        got = await recv_two(ws)
        self.assertEqual(got["ack"], ("o-1", {"stream_id": "3"}))
        self.assertEqual(got["order.placed"],
                         ("o-1", {"order_no": 3, "dish": "soup", "qty": 2}))

        await ws.send(netstrings("order", "o-2", '{"dish":"soup","qty":99}'))
        got = await recv_two(ws)
        self.assertEqual(got["ack"], ("o-2", {"stream_id": "4"}))
        self.assertEqual(got["order.rejected"][0], "o-2")
        self.assertIn("qty", got["order.rejected"][1]["reason"])

        # No correlation id: the gateway assigns one and the ack carries it.
        await ws.send(netstrings("tip", "", '{"coins":1}'))
        type_, corr, payload = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        self.assertEqual((type_, payload), ("ack", {"stream_id": "5"}))
        self.assertTrue(corr)
        tip_corr = corr

        # Bad frames are the codec's to refuse; the gateway answers in the same codec.
        await ws.send(b"5:order,3:o-3")
        type_, corr, payload = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        self.assertEqual((type_, corr, payload["code"]), ("error", None, "invalid_frame"))
        await ws.send(netstrings("bad type!", "o-4", "{}"))
        type_, corr, payload = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        self.assertEqual((type_, corr, payload["code"]), ("error", "o-4", "invalid_envelope"))

        # A built-in codec works beside ours, on the same bus and service.
        js = await websockets.connect(f"ws://{address}/ws/player/{token}",
                                      subprotocols=["gatehouse.json"],
                                      open_timeout=RECV_TIMEOUT_S, ping_interval=None)
        self.assertEqual(json.loads(await asyncio.wait_for(js.recv(), RECV_TIMEOUT_S))["type"],
                         "welcome")
        await js.send(json.dumps({"type": "order", "payload": {"dish": "pie"},
                                  "correlation_id": "j-1"}))
        got = {}
        for _ in range(2):
            m = json.loads(await asyncio.wait_for(js.recv(), RECV_TIMEOUT_S))
            got[m["type"]] = m
        self.assertEqual(got["order.placed"]["payload"], {"order_no": 6, "dish": "pie", "qty": 1})
        # The update is for the player: the netstring connection of chef-7 gets it too.
        type_, corr, payload = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        self.assertEqual((type_, corr, payload["order_no"]), ("order.placed", "j-1", 6))

        status, body = http_get(address, "/kitchen")
        self.assertEqual(json.loads(body), {"journal_entries": 4, "orders_placed": 2})

        with open(self.journal) as f:
            lines = [json.loads(line) for line in f]
        self.assertEqual(len(lines), 6)
        first = lines[2]
        self.assertEqual(first["entry"], 3)
        self.assertEqual(first["type"], "order")
        self.assertEqual(first["payload"], {"dish": "soup", "qty": 2})
        self.assertEqual(first["codec"], "json")
        self.assertEqual(first["correlation_id"], "o-1")
        self.assertEqual(first["player_id"], "chef-7")
        self.assertEqual(first["connection_id"], welcome["connection_id"])
        self.assertEqual(first["client"], "player")
        self.assertEqual((lines[4]["type"], lines[4]["correlation_id"]), ("tip", tip_corr))

        # Graceful stop: each connection is told to reconnect now (docs/protocol.md 6.7, no drain
        # spread), in its codec, then closed with 1001; exit code 0.
        self.assertEqual(await asyncio.to_thread(self.server.stop), 0, self.server.stderr())
        type_, _, payload = decode(await asyncio.wait_for(ws.recv(), RECV_TIMEOUT_S))
        self.assertEqual((type_, payload), ("gatehouse.reconnect", {"after_ms": 0}))
        m = json.loads(await asyncio.wait_for(js.recv(), RECV_TIMEOUT_S))
        self.assertEqual((m["type"], m["payload"]), ("gatehouse.reconnect", {"after_ms": 0}))
        for conn in (ws, js):
            try:
                await asyncio.wait_for(conn.recv(), RECV_TIMEOUT_S)
                self.fail("a message after the reconnect")
            except websockets.ConnectionClosed:
                pass
            self.assertEqual(conn.close_code, 1001)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: test_standalone_server.py PATH/TO/gatehouse-example-standalone-server")
    BINARY = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
