#!/usr/bin/env python3
"""The RabbitMQ example service end to end (issue 20, docs/amqp.md): a real rabbitmq-server,
gatehouse-server with --amqp, echo_service.py (python3-pika), WebSocket clients.

Usage: test_amqp_service.py PATH/TO/gatehouse-server [unittest args]

As a client sees it: command -> ack with a stream_id (after the broker confirmed the message)
-> the service's "echo" update with the command's correlation_id, that stream_id and the
original payload, at the sending connection only; the command queue is empty afterwards (every
command acked by the service). Commands sent while no service runs wait in the queue. The
harness and the broker fixture are the server suites' own. Only 127.0.0.1; every wait bounded.
"""

import base64
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "server"))
sys.path.insert(0, os.path.join(HERE, "..", "redis_service"))

import gatehouse_harness as h  # noqa: E402
from gatehouse_harness import Client, mp_unpack  # noqa: E402
from rabbitmq_fixture import RabbitMQServer  # noqa: E402
import test_redis_service as rs  # noqa: E402  (Service, wait_until, the ack/echo reader)

PYTHON_SERVICE = os.path.join(HERE, "echo_service.py")
EXCHANGE = "test.commands"  # not the defaults, so that both flags reach server and service
UPDATES = "test.updates"
GATEWAY_ID = rs.GATEWAY_ID


def service(url):
    return rs.Service([rs.PYTHON, PYTHON_SERVICE, "--amqp", url, "--amqp-exchange", EXCHANGE,
                       "--amqp-updates-exchange", UPDATES])


class PythonServiceOnRabbitMQ(h.AsyncCase):
    # The Redis test's reading helpers, on this class.
    ack_and_echo = rs.RedisGatewayCase.ack_and_echo
    roundtrip = rs.RedisGatewayCase.roundtrip
    send_command = rs.RedisGatewayCase.send_command
    player = rs.RedisGatewayCase.player
    start = rs.RedisGatewayCase.start
    stop_cleanly = rs.RedisGatewayCase.stop_cleanly

    @classmethod
    def setUpClass(cls):
        cls.rabbit = RabbitMQServer().start()
        try:
            cls.server = h.Server("--amqp", cls.rabbit.url, "--amqp-exchange", EXCHANGE,
                                  "--amqp-updates-exchange", UPDATES, "--gateway-id", GATEWAY_ID,
                                  binary=h.SERVER_BINARY).start()
            rs.wait_until(lambda: cls.server.http("GET", "/ready")[0] == 200,
                          rs.BUS_READY_TIMEOUT_S, "GET /ready answering 200")
        except Exception:
            cls.rabbit.close()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            code = cls.server.stop()
            report = cls.server.sanitizer_report()
            if report:
                raise AssertionError(f"sanitizer report in the server's stderr:\n{report}")
            if code != 0:
                raise AssertionError(f"server exit code {code}; stderr tail: "
                                     f"{cls.server.stderr_text()[-1500:]}")
        finally:
            cls.rabbit.close()

    def assert_queue_empty(self):
        deadline = time.monotonic() + 3.0  # the service acks just after it publishes
        while self.rabbit.queue_depth(EXCHANGE) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.rabbit.queue_depth(EXCHANGE), 0)

    async def test_queued_first_then_echo_to_the_sending_connection_in_each_codec(self):
        a1 = await self.player("py-a")
        a2 = await self.player("py-a")
        m = await self.player("py-m", "msgpack")
        try:
            # No service yet: the command waits in the durable queue.
            await self.send_command(a1, {"early": True}, "q-1")
            ack = await a1.recv()
            self.assertEqual((ack["type"], ack["correlation_id"]), ("ack", "q-1"), ack)
            svc = self.start(service(self.rabbit.url))
            echo = await a1.recv()
            self.assertEqual((echo["type"], echo["correlation_id"]), ("echo", "q-1"), echo)
            self.assertEqual(echo["payload"]["stream_id"], ack["payload"]["stream_id"])

            move = {"move": [1, 2], "s": "\u00e9\u2603", "n": None}
            p = await self.roundtrip(a1, move, "py-json-1")
            self.assertEqual(p["payload"], move)
            await a2.expect_nothing(0.3)  # targeted to a1's connection

            blob = {"bin": b"\x00\x01\xfe\xff", "k": 7}
            p = await self.roundtrip(m, blob, "py-mp-1", codec="msgpack")
            self.assertEqual(mp_unpack(base64.b64decode(p["payload"])), blob)
            self.assert_queue_empty()
        finally:
            for c in (a1, a2, m):
                await c.close()
        self.stop_cleanly(svc)


if __name__ == "__main__":
    h.run_main()
