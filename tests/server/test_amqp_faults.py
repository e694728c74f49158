#!/usr/bin/env python3
"""gatehouse-server in RabbitMQ mode when the broker fails (issue 20): started before the broker,
the broker killed (SIGKILL) mid-traffic and restarted on the same ports with its data, then
hung (SIGSTOP) and resumed; the gateway never restarted.

Usage: test_amqp_faults.py PATH/TO/gatehouse-server [unittest args]

The invariant: every command gets exactly one answer, an ack or `bus_unavailable`; an ack
means the broker confirmed the persistent message, so every acked command is in the command
queue after the broker's crash and restart. One broker for the file (starting one takes
seconds), brought up by the test itself after the gateways.
"""

import asyncio
import time

import amqp_helpers as ah
from amqp_helpers import Broker, amqp_gateway
import gatehouse_harness as h
from gatehouse_harness import Client
import redis_helpers as rh
from redis_helpers import check_ack, check_bus_unavailable, wait_ready
from rabbitmq_fixture import RabbitMQServer
from test_redis_faults import Traffic

READY_DOWN_WITHIN_S = 5.0   # a killed broker closes the socket: seen at once, plus slack
READY_UP_WITHIN_S = 10.0    # backoff capped at 2 s; a sanitizer build reconnects slowly
HUNG_SEEN_WITHIN_S = 4.0    # --amqp-timeout 2: the confirm deadline, plus slack
BROKER_START_S = 60.0


class BrokerOutage(h.AsyncCase):
    bot_keys = {"rover": "botkey-rover-faults"}

    def open_client(self, i):
        if i == 3:
            return Client.bot(self.server, "rover")
        return Client.player(self.server, ("load-json", "load-mp", "load-pb")[i],
                             ("json", "msgpack", "protobuf")[i])

    async def wait_status(self, server, want, within):
        status, waited = await asyncio.to_thread(wait_ready, server, want, within)
        self.assertEqual(status, want, f"/ready still {status} after {waited:.2f} s")
        return waited

    async def test_before_start_then_killed_mid_traffic_keeps_every_acked_command(self):
        rabbit = RabbitMQServer()
        self.addCleanup(rabbit.close)
        exchange = ah.unique("gh.commands")
        updates = ah.unique("gh.updates")
        self.gateway_id = ah.unique("gw")
        self.server = amqp_gateway(rabbit.url, exchange, updates, self.gateway_id,
                                   *ah.FAST_RECOVERY, "--ws-rate-limit", "0",
                                   bot_keys=self.bot_keys).start()
        self.addCleanup(self.server.kill)
        spare = amqp_gateway(rabbit.url, exchange, updates, ah.unique("gw-spare"),
                             *ah.FAST_RECOVERY).start()
        self.addCleanup(spare.kill)

        # 1. No broker yet: serving, but unready, and commands get bus_unavailable.
        await self.wait_status(self.server, 503, 1.0)
        c = await Client.player(self.server, "early", "json")
        check_bus_unavailable(self, await c.command("t", 1, "early-1"), "early-1")
        t0 = time.monotonic()
        await asyncio.to_thread(rabbit.start)
        h.note(f"rabbitmq-server started in {time.monotonic() - t0:.1f} s")
        up_first = await self.wait_status(self.server, 200, READY_UP_WITHIN_S)
        check_ack(self, await c.command("t", 2, "early-2"), "early-2")
        await c.close()

        # 2. Traffic; the broker killed under it, down a while, restarted with its data.
        clients = [await self.open_client(i) for i in range(4)]
        # Bounded at 3000 commands a client (75 s of sending): enough for a broker restart
        # that takes long on a loaded machine; stop() ends it as soon as the checks are done.
        traffic = Traffic(clients, "k", max_per_client=3000, reopen=self.open_client)
        task = asyncio.create_task(traffic.run())
        try:
            self.assertTrue(await traffic.wait_acks(10, timeout=10), "no traffic before the kill")
            await asyncio.to_thread(rabbit.kill)
            t_killed = time.monotonic()
            down_after = await self.wait_status(self.server, 503, READY_DOWN_WITHIN_S)
            # A gateway stops cleanly while its broker is away.
            t_stop = time.monotonic()
            self.assertEqual(rh.stop_and_check(spare), [])
            stop_took = time.monotonic() - t_stop
            await asyncio.sleep(1.0)  # an outage under traffic
            t_restart = time.monotonic()
            await asyncio.to_thread(rabbit.start)
            t_restarted = time.monotonic()
            up_after = await self.wait_status(self.server, 200, READY_UP_WITHIN_S)
            self.assertTrue(await traffic.wait_acks(10, timeout=15, sent_after=t_restarted),
                            "no acks after the restart; the server's log: "
                            f"{self.server.stderr_text()[-2500:]}")
            traffic.stop()
            await asyncio.wait_for(task, 60)
        finally:
            traffic.stop()
            if not task.done():
                task.cancel()
            for x in traffic.clients:
                await x.close()

        counts = traffic.check_every_command_answered_once(self)
        self.assertGreater(counts["bus_unavailable"], 0)
        # Nothing can be acked while the broker is dead.
        in_outage = [cid for cid, (_, at) in traffic.sent.items()
                     if t_killed + 0.5 < at < t_restart - 0.3]
        self.assertGreater(len(in_outage), 0)
        kinds = {rh.answer_kind(traffic.answers[cid][0][0]) for cid in in_outage}
        self.assertEqual(kinds, {"bus_unavailable"}, "a command sent while the broker was dead")
        self.assertEqual(traffic.interrupted, len(clients), "each client got one 1012")

        # 3. Every acked command, before the kill as after the restart, is in the queue.
        broker = Broker(rabbit)
        self.addCleanup(broker.close)
        messages = await asyncio.to_thread(broker.drain, exchange)
        queued = {}
        for _, props, _ in messages:
            cid = props.correlation_id
            queued.setdefault(cid, set()).add(props.message_id)
        acked = traffic.acked()
        missing = [(cid, sid) for cid, sid in acked.items()
                   if f"{self.gateway_id}/{sid}" not in queued.get(cid, set())]
        self.assertEqual(missing, [], f"{len(missing)} of {len(acked)} acked commands are not "
                         "in the command queue after the crash")

        # 4. Updates flow again on the new subscription.
        c = await Client.player(self.server, "after", "json")
        try:
            await asyncio.to_thread(broker.publish, updates,
                                    {"player_id": "after", "type": "back", "payload": 1})
            rh.assert_update(self, await c.recv(), "back", 1)
        finally:
            await c.close()
        # 5. A hung broker (SIGSTOP): nothing closes, so the confirm deadline (--amqp-timeout 2)
        # answers the command in flight and breaks the link; SIGCONT heals it.
        c = await Client.player(self.server, "hung", "json")
        try:
            check_ack(self, await c.command("t", 1, "hung-1"), "hung-1")
            rabbit.pause()
            try:
                t_sent = time.monotonic()
                await c.send("t", 2, "hung-2")
                answer = await c.recv(timeout=HUNG_SEEN_WITHIN_S + 2)
                waited = time.monotonic() - t_sent
                check_bus_unavailable(self, answer, "hung-2")
                self.assertLess(waited, HUNG_SEEN_WITHIN_S, "the confirm deadline")
                await self.wait_status(self.server, 503, 2.0)
            finally:
                rabbit.resume()
            hung_up_after = await self.wait_status(self.server, 200, READY_UP_WITHIN_S)
        finally:
            await c.close()
        c = await Client.player(self.server, "unhung", "json")
        try:
            check_ack(self, await c.command("t", 3, "hung-3"), "hung-3")
        finally:
            await c.close()

        m = self.server.metrics()
        self.assertGreaterEqual(h.metric_value(m, "gatehouse_amqp_reconnects_total"), 1)
        h.note(f"{len(traffic.sent)} commands: {counts['ack']} acked (all {len(acked)} found "
               f"in the queue of {len(messages)}), {counts['bus_unavailable']} bus_unavailable, "
               f"{len(traffic.lost)} unanswered at the 1012; ready {up_first:.2f} s after the "
               f"first start; /ready 503 {down_after:.2f} s after the kill, 200 "
               f"{up_after:.2f} s after the restart; a gateway stopped in the outage in "
               f"{stop_took:.2f} s; hung broker: bus_unavailable after {waited:.2f} s, ready "
               f"{hung_up_after:.2f} s after SIGCONT")
        self.assertEqual(rh.stop_and_check(self.server), [])


if __name__ == "__main__":
    h.run_main()
