"""Playing Click & Cook over a gatehouse WebSocket, for the demo game's black-box tests.

A command's ack (from the gateway) and its game.state / game.error update (from the game, via
the bus) travel different paths, so either may arrive first: `play` waits for both, bounded.
"""

import itertools
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "tests", "server"))

import gatehouse_harness as h  # noqa: E402

ABSENT = h._ABSENT  # a command sent without a payload
FRESH = {"coins": 0, "dishes": 0, "level": 1, "xp": 0, "cook_power": 1, "sell_price": 2,
         "passive_rate": 0, "upgrades": {"knife": 0, "stove": 0, "waiter": 0}, "revision": 0}
STATE_KEYS = sorted(list(FRESH) + ["last_passive_ms"])
_ids = itertools.count(1)


def new_correlation_id(type_):
    return f"{type_}-{next(_ids)}"


async def play(test, client, type_, payload=ABSENT, expect="game.state", **send_kw):
    """Sends one game command; checks its ack and its update (of type `expect`, with the
    command's correlation_id and `request`); returns the update's payload."""
    cid = new_correlation_id(type_)
    await client.send(type_, payload, cid, **send_kw)
    ack = update = None
    deadline = time.monotonic() + h.RECV_TIMEOUT_S
    while ack is None or update is None:
        left = deadline - time.monotonic()
        if left <= 0:
            test.fail(f"{type_} {cid}: ack {ack!r:.300}, update {update!r:.300} within "
                      f"{h.RECV_TIMEOUT_S} s")
        env = await client.recv(left)
        test.assertEqual(env.get("correlation_id"), cid, env)
        if env["type"] == "ack" and ack is None:
            ack = env
        elif env["type"] in ("game.state", "game.error") and update is None:
            update = env
        else:
            test.fail(f"unexpected frame {env!r:.500}")
    test.assertEqual(update["type"], expect, update)
    # Clients get type, payload, correlation_id and, for an update the game published through
    # the update log (docs/protocol.md 6.4), the update_id to resume from: no routing keys.
    test.assertEqual(sorted(set(update["_keys"]) - {"update_id"}),
                     ["correlation_id", "payload", "type"], update)
    test.assertEqual(update["payload"]["request"], type_, update)
    if expect == "game.state":
        test.assertEqual(sorted(update["payload"]["state"]), STATE_KEYS, update)
    return update["payload"]


async def state_of(test, client, type_, payload=ABSENT, **kw):
    return (await play(test, client, type_, payload, **kw))["state"]


async def refused(test, client, type_, payload, code, **send_kw):
    p = await play(test, client, type_, payload, expect="game.error", **send_kw)
    test.assertEqual(p["code"], code, p)
    test.assertIsInstance(p["message"], str)
    test.assertTrue(p["message"], p)
    return p


def without_clock(state):
    return {k: v for k, v in state.items() if k != "last_passive_ms"}
