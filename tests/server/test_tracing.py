#!/usr/bin/env python3
"""Tracing (docs/operations.md, "Tracing"): gatehouse-server with `--otlp-endpoint` exports its
spans over OTLP/HTTP (JSON) to a collector on 127.0.0.1 (Python's http.server, here), and a
client's command is one trace from the client through the gateway's ingress span to the stream
entry: the span is a child of the client's `traceparent`, and the entry's `traceparent` names
that span. Checked on the in-process bus (spans: upgrade, HTTP request, command ingress over
WebSocket and POST /commands, update routing) and on a real redis-server (the entry read back
with XRANGE). A collector that is down costs nothing but a counted failure; a bad endpoint is
refused at start, naming its flag.

Usage: test_tracing.py PATH/TO/gatehouse-server [unittest args]
"""

import asyncio
import http.server
import json
import re
import secrets
import subprocess
import threading
import time

import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from accounts_helpers import post

SERVICE = "gh-tracing-test"
# Spans are exported at least every 2 s (tracer_options::export_interval); a loaded machine may
# take a little longer to get the batch out.
SPAN_TIMEOUT_S = 10.0


def traceparent():
    """A fresh client traceparent: (header value, trace id, parent span id)."""
    trace, parent = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace}-{parent}-01", trace, parent


class Collector:
    """An OTLP/HTTP receiver: keeps every POST (path, content type, parsed body) and answers
    200 `{}`, as a collector does."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with collector.lock:
                    collector.requests.append(
                        (self.path, self.headers.get("Content-Type", ""), body))
                answer = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def raw_bodies(self):
        with self.lock:
            return [body for _, _, body in self.requests]

    def spans(self):
        """[(resource attributes, span)] of every span received so far."""
        out = []
        with self.lock:
            requests = list(self.requests)
        for _, _, body in requests:
            doc = json.loads(body)
            for rs in doc["resourceSpans"]:
                resource = attributes(rs["resource"])
                for ss in rs["scopeSpans"]:
                    for span in ss["spans"]:
                        out.append((resource, span))
        return out

    async def wait_span(self, predicate, timeout=SPAN_TIMEOUT_S):
        """The first span for which `predicate(span)` holds, polled until `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            for _, span in self.spans():
                if predicate(span):
                    return span
            if time.monotonic() >= deadline:
                names = [(s["name"], attributes(s)) for _, s in self.spans()]
                raise AssertionError(f"no matching span within {timeout} s; got {names!r:.3000}")
            await asyncio.sleep(0.05)


async def send_traced(client, type_, payload, correlation_id, tp):
    """A command with an envelope traceparent, in the client's codec."""
    if client.codec == "protobuf":
        frame = h.pb_encode(type_, json.dumps(payload).encode(), correlation_id, "json",
                            traceparent=tp)
    else:
        env = {"type": type_, "payload": payload, "correlation_id": correlation_id,
               "traceparent": tp}
        frame = json.dumps(env) if client.codec == "json" else h.mp_pack(env)
    await client.send_raw(frame)


def attributes(obj):
    """An OTLP attribute list as {key: value} (intValue as int)."""
    out = {}
    for a in obj.get("attributes", []):
        (kind, value), = a["value"].items()
        out[a["key"]] = int(value) if kind == "intValue" else value
    return out


def with_attribute(key, value):
    return lambda span: attributes(span).get(key) == value


def named(name, **attrs):
    return lambda span: span["name"] == name and all(
        attributes(span).get(k) == v for k, v in attrs.items())


class TracingCase:
    """Shared checks of the span shapes."""

    def check_span_shape(self, span):
        self.assertRegex(span["traceId"], r"^[0-9a-f]{32}$", span)
        self.assertRegex(span["spanId"], r"^[0-9a-f]{16}$", span)
        self.assertNotEqual(span["traceId"], "0" * 32)
        self.assertRegex(span["startTimeUnixNano"], r"^[0-9]+$", span)
        self.assertRegex(span["endTimeUnixNano"], r"^[0-9]+$", span)
        self.assertLessEqual(int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"]))
        # Within a minute of now: nanoseconds since the Unix epoch.
        self.assertLess(abs(int(span["startTimeUnixNano"]) / 1e9 - time.time()), 60, span)

    def check_ingress(self, span, trace, parent, stream_id, transport):
        """A command's ingress span: a producer span, a child of the client's span, recording
        decode, append and ack, and the stream entry's id."""
        self.check_span_shape(span)
        self.assertEqual(span["traceId"], trace, span)
        self.assertEqual(span.get("parentSpanId"), parent, span)
        self.assertEqual(span["kind"], 4, span)  # SPAN_KIND_PRODUCER
        self.assertEqual(span["name"], "command ingress", span)
        a = attributes(span)
        self.assertEqual(a["gatehouse.stream_id"], stream_id, span)
        self.assertEqual(a["gatehouse.transport"], transport, span)
        self.assertEqual([e["name"] for e in span.get("events", [])],
                         ["decoded", "bus append", "acked"], span)
        self.assertEqual(span["status"].get("code", 0), 0, span)


# ---------------------------------------------------------------------------------------------
# The in-process bus


class InProcess(TracingCase, h.AsyncCase):
    @classmethod
    def setUpClass(cls):
        cls.collector = Collector()
        cls.publish_key = "pub-" + secrets.token_hex(8)
        try:
            cls.server = h.Server("--otlp-endpoint", cls.collector.endpoint,
                                  "--otlp-service-name", SERVICE,
                                  "--gateway-id", "gw-traced",
                                  publish_key=cls.publish_key).start()
        except BaseException:
            cls.collector.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            problems = rh.stop_and_check(cls.server)
        finally:
            cls.collector.close()
        if problems:
            raise AssertionError("\n".join(problems))

    async def test_websocket_command_continues_the_clients_trace(self):
        tp, trace, parent = traceparent()
        upgrade_tp, upgrade_trace, upgrade_parent = traceparent()
        token = self.server.token("traced-ws")
        c = await Client.open(self.server, "/ws/player/" + token,
                              headers={"traceparent": upgrade_tp})
        try:
            await send_traced(c, "move", {"x": 1}, "c-1", tp)
            stream_id = rh.check_ack(self, await c.recv(), "c-1")
        finally:
            await c.close()
        span = await self.collector.wait_span(with_attribute("gatehouse.stream_id", stream_id))
        self.check_ingress(span, trace, parent, stream_id, "websocket")
        a = attributes(span)
        self.assertEqual(a["gatehouse.command.type"], "move")
        self.assertEqual(a["gatehouse.correlation_id"], "c-1")
        self.assertEqual(a["gatehouse.player_id"], "traced-ws")
        connection_id = a["gatehouse.connection_id"]

        # The upgrade: a server span, a child of the upgrade request's traceparent, named by
        # its route; the token is in no span.
        upgrade = await self.collector.wait_span(
            named("upgrade /ws/player/{token}", **{"gatehouse.connection_id": connection_id}))
        self.check_span_shape(upgrade)
        self.assertEqual(upgrade["kind"], 2)  # SPAN_KIND_SERVER
        self.assertEqual(upgrade["traceId"], upgrade_trace)
        self.assertEqual(upgrade.get("parentSpanId"), upgrade_parent)
        ua = attributes(upgrade)
        self.assertEqual(ua["http.response.status_code"], 101)
        self.assertEqual(ua["gatehouse.codec"], "json")
        for body in self.collector.raw_bodies():
            self.assertNotIn(token.encode(), body)

    async def test_http_command_continues_the_header_trace(self):
        tp, trace, parent = traceparent()
        r = post(self.server, "/commands", {"type": "buy", "correlation_id": "h-1"},
                 token=self.server.token("traced-http"), headers={"traceparent": tp})
        self.assertEqual(r.status, 202, r)
        stream_id = r.json["stream_id"]
        span = await self.collector.wait_span(with_attribute("gatehouse.stream_id", stream_id))
        self.check_ingress(span, trace, parent, stream_id, "http")
        # The request's own server span: a sibling under the client's span.
        request = await self.collector.wait_span(
            lambda s: s["name"] == "POST /commands" and s["traceId"] == trace)
        self.check_span_shape(request)
        self.assertEqual(request["kind"], 2)
        self.assertEqual(request.get("parentSpanId"), parent)
        ra = attributes(request)
        self.assertEqual(ra["http.route"], "/commands")
        self.assertEqual(ra["http.response.status_code"], 202)
        self.assertEqual(ra["http.request.method"], "POST")

    async def test_a_command_without_traceparent_starts_a_trace(self):
        r = post(self.server, "/commands", {"type": "t"}, token=self.server.token("untraced"))
        self.assertEqual(r.status, 202, r)
        span = await self.collector.wait_span(
            with_attribute("gatehouse.stream_id", r.json["stream_id"]))
        self.check_span_shape(span)
        self.assertNotIn("parentSpanId", span)

    async def test_refused_commands_are_error_spans(self):
        c = await Client.player(self.server, "refused-ws")
        try:
            await c.send("gatehouse.nope", None, "r-1")
            self.assertEqual((await c.recv())["type"], "error")
        finally:
            await c.close()
        span = await self.collector.wait_span(
            lambda s: s["name"] == "command ingress"
            and attributes(s).get("gatehouse.correlation_id") == "r-1")
        self.assertEqual(span["status"]["code"], 2, span)  # STATUS_CODE_ERROR
        self.assertEqual(attributes(span)["gatehouse.error"], "invalid_envelope")

    async def test_http_requests_are_named_by_route(self):
        self.assertEqual(self.server.http("GET", "/health")[0], 200)
        self.assertEqual(self.server.http("GET", "/no/such/path/" + secrets.token_hex(4))[0], 404)
        health = await self.collector.wait_span(named("GET /health"))
        self.assertEqual(attributes(health)["http.response.status_code"], 200)
        unknown = await self.collector.wait_span(
            lambda s: s["name"] == "GET" and attributes(s).get("http.response.status_code") == 404)
        self.assertNotIn("http.route", attributes(unknown))

    async def test_update_routing_is_a_child_of_the_updates_trace(self):
        tp, trace, parent = traceparent()
        c = await Client.player(self.server, "update-reader")
        try:
            self.server.publish_ok({"player_id": "update-reader", "type": "tick",
                                    "payload": 1, "traceparent": tp})
            got = (await c.recv_until(lambda env: env.get("type") == "tick"))[-1]
            # The update's traceparent reaches the client unchanged (docs/protocol.md 6.8).
            self.assertEqual(got.get("traceparent"), tp)
        finally:
            await c.close()
        span = await self.collector.wait_span(
            lambda s: s["name"] == "update route" and s["traceId"] == trace)
        self.check_span_shape(span)
        self.assertEqual(span["kind"], 5)  # SPAN_KIND_CONSUMER
        self.assertEqual(span.get("parentSpanId"), parent)
        a = attributes(span)
        self.assertEqual(a["gatehouse.update.target"], "player")
        self.assertEqual(a["gatehouse.update.type"], "tick")
        self.assertEqual(a["gatehouse.update.queued"], 1)

    async def test_export_requests_and_metrics(self):
        self.assertEqual(self.server.http("GET", "/health")[0], 200)
        await self.collector.wait_span(named("GET /health"))
        with self.collector.lock:
            path, content_type, _ = self.collector.requests[0]
        self.assertEqual(path, "/v1/traces")
        self.assertTrue(content_type.startswith("application/json"), content_type)
        resource, _ = self.collector.spans()[0]
        self.assertEqual(resource["service.name"], SERVICE)
        self.assertEqual(resource["service.instance.id"], "gw-traced")
        self.assertGreaterEqual(self.server.wait_metric("gatehouse_trace_spans_exported_total",
                                                        lambda v: v >= 1), 1)
        self.assertEqual(self.server.metric("gatehouse_trace_spans_dropped_total"), 0)
        self.assertEqual(self.server.metric("gatehouse_trace_export_failures_total"), 0)


# ---------------------------------------------------------------------------------------------
# A real redis-server: the stream entry names the gateway's span


class OnRedis(TracingCase, rh.OneRedisGateway):
    collector = None

    @classmethod
    def extra_args(cls):
        return ["--otlp-endpoint", cls.collector.endpoint + "/custom/traces"]

    @classmethod
    def setUpClass(cls):
        cls.collector = Collector()
        try:
            super().setUpClass()
        except BaseException:
            cls.collector.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.collector.close()

    async def check_entry_continues(self, stream_id, trace, parent, transport):
        span = await self.collector.wait_span(with_attribute("gatehouse.stream_id", stream_id))
        self.check_ingress(span, trace, parent, stream_id, transport)
        fields = await asyncio.to_thread(rh.entry, self.r, self.stream, stream_id)
        # The entry's traceparent: the client's trace, the gateway's span as the parent.
        self.assertEqual(fields.get("traceparent"),
                         f"00-{trace}-{span['spanId']}-01".encode(), fields)

    async def test_websocket_command_entry_names_the_ingress_span(self):
        for codec in ("json", "msgpack", "protobuf"):
            with self.subTest(codec=codec):
                tp, trace, parent = traceparent()
                c = await Client.player(self.server, rh.unique("ws-traced"), codec)
                try:
                    await send_traced(c, "t", [1], "c1", tp)
                    stream_id = rh.check_ack(self, await c.recv(), "c1")
                finally:
                    await c.close()
                await self.check_entry_continues(stream_id, trace, parent, "websocket")

    async def test_http_command_entry_names_the_ingress_span(self):
        tp, trace, parent = traceparent()
        r = post(self.server, "/commands", {"type": "h"}, token=self.server.token("http-traced"),
                 headers={"traceparent": tp})
        self.assertEqual(r.status, 202, r)
        await self.check_entry_continues(r.json["stream_id"], trace, parent, "http")

    async def test_without_traceparent_the_entry_starts_the_trace(self):
        r = post(self.server, "/commands", {"type": "n"}, token=self.server.token("untraced"))
        self.assertEqual(r.status, 202, r)
        span = await self.collector.wait_span(
            with_attribute("gatehouse.stream_id", r.json["stream_id"]))
        self.assertNotIn("parentSpanId", span)
        fields = await asyncio.to_thread(rh.entry, self.r, self.stream, r.json["stream_id"])
        self.assertEqual(fields.get("traceparent"),
                         f"00-{span['traceId']}-{span['spanId']}-01".encode(), fields)

    async def test_the_endpoints_path_is_used(self):
        self.assertEqual(self.server.http("GET", "/health")[0], 200)
        await self.collector.wait_span(named("GET /health"))
        with self.collector.lock:
            paths = {path for path, _, _ in self.collector.requests}
        self.assertEqual(paths, {"/custom/traces"})


# ---------------------------------------------------------------------------------------------
# A collector that is down; a bad endpoint


class CollectorDown(h.AsyncCase):
    async def test_commands_are_served_and_failures_counted(self):
        # A port nothing listens on: every export is refused at once.
        probe = Collector()
        endpoint = probe.endpoint
        probe.close()
        server = h.Server("--otlp-endpoint", endpoint).start()
        try:
            for i in range(3):
                r = post(server, "/commands", {"type": "t", "correlation_id": f"d-{i}"},
                         token=server.token("down"))
                self.assertEqual(r.status, 202, r)
            self.assertGreaterEqual(server.wait_metric("gatehouse_trace_export_failures_total",
                                                       lambda v: v >= 1, timeout=SPAN_TIMEOUT_S),
                                    1)
            self.assertGreaterEqual(server.metric("gatehouse_trace_spans_failed_total"), 3)
        finally:
            problems = rh.stop_and_check(server)
        self.assertEqual(problems, [])
        self.assertRegex(server.stderr_text() + server.stdout_text(), r"trace export to .* failed")


class BadEndpoint(h.AsyncCase):
    async def test_refused_at_start_naming_the_flag(self):
        for endpoint in ("https://collector:4318", "collector:4318", "http://:4318",
                         "http://collector:99999"):
            with self.subTest(endpoint=endpoint):
                server = h.Server("--otlp-endpoint", endpoint)
                proc = subprocess.run([server.binary, *server.args], capture_output=True,
                                      timeout=20, env=server.env)
                self.assertEqual(proc.returncode, 2, proc)
                self.assertTrue(re.search(rb"--otlp-endpoint", proc.stderr + proc.stdout), proc)


if __name__ == "__main__":
    h.run_main()
