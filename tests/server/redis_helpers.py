"""Shared pieces of the Redis-mode suites (test_redis_bus, test_redis_faults,
test_redis_scaleout): gatehouse-server started with `--redis` on a RedisServer from
redis_fixture.py, the stream entry read back with XRANGE, updates sent with a real PUBLISH.

Nothing here knows the server's code: the expectations come from docs/protocol.md sections 3-5 and
the Redis flags of issue 4. Every wait is bounded.
"""

import asyncio
import json
import secrets
import time

import gatehouse_harness as h
from gatehouse_harness import Server
from redis_fixture import RedisServer

# The fields of a stream entry (docs/protocol.md s. 4); `payload_codec` only when a protobuf
# envelope names what its opaque payload bytes are.
ENTRY_FIELDS = {"type", "payload", "codec", "correlation_id", "player_id", "connection_id",
                "gateway_id", "client", "ts_ms"}

# Short deadlines so the fault suites heal in well under a second once Redis is back.
FAST_RECOVERY = ["--redis-timeout", "2", "--redis-reconnect-max", "0.5"]
REDIS_TIMEOUT_S = 2.0


def unique(prefix):
    """A fresh name (stream, channel, gateway id, player), so no two tests share state."""
    return f"{prefix}-{secrets.token_hex(5)}"


def redis_gateway(redis_url, stream, channel, gateway_id, *extra, jwt_secret=None,
                  bot_keys=(), env=None, shutdown_timeout=None):
    """A Server (not started) in Redis mode: no --publish-key, only the Redis bus.

    `shutdown_timeout` replaces the harness's drain limit (the flag may be given only once)."""
    args = []
    if redis_url is not None:
        args += ["--redis", redis_url]
    if stream is not None:
        args += ["--command-stream", stream]
    if channel is not None:
        args += ["--updates-channel", channel]
    if gateway_id is not None:
        args += ["--gateway-id", gateway_id]
    server = Server(*args, *extra, jwt_secret=jwt_secret, bot_keys=bot_keys, env=env)
    if shutdown_timeout is not None:
        i = server.args.index("--shutdown-timeout")
        server.args[i + 1] = str(shutdown_timeout)
    return server


def stop_and_check(server):
    """SIGTERM; the problems found (exit code other than 0, a sanitizer report), as text."""
    problems = []
    code = server.stop()
    report = server.sanitizer_report()
    if report:
        problems.append(f"sanitizer report in the server's stderr:\n{report}")
    if code != 0:
        problems.append(f"server exit code {code} after SIGTERM (want 0); stderr tail: "
                        f"{server.stderr_text()[-1500:]}")
    return problems


# ---------------------------------------------------------------------------------------------
# /ready


def ready_status(server, timeout=2.0):
    """GET /ready's status, or None when the request itself failed."""
    try:
        status, _, _ = server.http("GET", "/ready", timeout=timeout)
        return status
    except OSError:
        return None


def wait_ready(server, want, timeout):
    """Polls /ready until it answers `want`; returns (last status, seconds waited)."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        status = ready_status(server)
        if status == want or time.monotonic() >= deadline:
            return status, time.monotonic() - t0
        time.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# The stream


def decode_fields(fields):
    """redis-py's {bytes: bytes} as {str field: bytes value}."""
    return {k.decode(): v for k, v in fields.items()}


def entry(rclient, stream, stream_id):
    """The fields of entry `stream_id` (XRANGE id id), or None when there is no such entry."""
    got = rclient.xrange(stream, min=stream_id, max=stream_id)
    if not got:
        return None
    if len(got) != 1 or got[0][0].decode() != stream_id:
        raise AssertionError(f"XRANGE {stream_id} {stream_id} returned {got!r:.300}")
    return decode_fields(got[0][1])


def all_entries(rclient, stream):
    """{stream id: fields} of the whole stream."""
    return {i.decode(): decode_fields(f) for i, f in rclient.xrange(stream)}


# ---------------------------------------------------------------------------------------------
# Updates through Redis PUBLISH


def publish(rclient, channel, message):
    """PUBLISH; returns how many subscribers Redis handed it to. Dicts are sent as JSON."""
    if isinstance(message, (dict, list)):
        message = json.dumps(message)
    return rclient.publish(channel, message)


async def apublish(rclient, channel, message):
    return await asyncio.to_thread(publish, rclient, channel, message)


def assert_update(case, env, type_, payload, correlation_id=None):
    """What a client receives: only {type, payload, correlation_id?, update_id?} (no routing
    keys)."""
    case.assertEqual(env["type"], type_, env)
    case.assertEqual(env["payload"], payload, env)
    # A logged update (FCALL gatehouse_publish) adds its update_id (docs/protocol.md 6.4).
    case.assertTrue(set(env["_keys"]) <= {"type", "payload", "correlation_id", "update_id"}, env)
    if correlation_id is None:
        case.assertIsNone(env.get("correlation_id"), env)
    else:
        case.assertEqual(env.get("correlation_id"), correlation_id, env)


async def received_before_marker(rclient, channel, client, player_id, timeout=h.RECV_TIMEOUT_S):
    """Publishes a marker update to `player_id` and returns what `client` got before it.

    Updates reach a player in publish order, so once the later marker has arrived, an earlier
    update that was going to arrive has arrived: an empty list proves "not delivered".
    """
    tag = "m-" + secrets.token_hex(4)
    await apublish(rclient, channel, {"player_id": player_id, "type": "marker",
                                      "payload": {"tag": tag}})
    got = await client.recv_until(
        lambda e: e["type"] == "marker" and e["payload"] == {"tag": tag}, timeout)
    return [e for e in got[:-1] if e["type"] != "marker"]


# ---------------------------------------------------------------------------------------------
# Answers to commands


def answer_kind(env):
    """"ack", "bus_unavailable", or a description of anything else."""
    if env.get("type") == "ack":
        return "ack"
    if env.get("type") == "error":
        return (env.get("payload") or {}).get("code") or "error without code"
    return f"unexpected frame type {env.get('type')!r}"


def check_ack(case, env, correlation_id=None):
    """Asserts an ack (of `correlation_id` when given); returns its stream_id."""
    case.assertEqual(env.get("type"), "ack", env)
    if correlation_id is not None:
        case.assertEqual(env.get("correlation_id"), correlation_id, env)
    else:
        cid = env.get("correlation_id")
        case.assertIsInstance(cid, str, env)
        case.assertTrue(1 <= len(cid) <= 128, env)
    case.assertIsInstance(env.get("payload"), dict, env)
    stream_id = env["payload"].get("stream_id")
    h.stream_id_key(stream_id)
    return stream_id


def check_bus_unavailable(case, env, correlation_id):
    case.assertEqual(env.get("type"), "error", env)
    case.assertEqual((env.get("payload") or {}).get("code"), "bus_unavailable", env)
    case.assertIsInstance(env["payload"].get("message"), str, env)
    case.assertEqual(env.get("correlation_id"), correlation_id, env)


class OneRedisGateway(h.AsyncCase):
    """One redis-server and one gatehouse-server on it (random stream, channel and gateway id),
    for the whole class. Subclasses set `redis_password` and `bot_keys`, and add flags with
    `extra_args()`. The class fails when the server did not exit 0 or reported a sanitizer
    finding."""

    bot_keys = {}
    redis_password = None

    @classmethod
    def extra_args(cls):
        return []

    @classmethod
    def redis_server(cls):
        """The (not started) RedisServer of the class: override to load a module."""
        return RedisServer(password=cls.redis_password)

    @classmethod
    def setUpClass(cls):
        cls.redis = cls.redis_server().start()
        try:
            cls.stream = unique("gh:commands")
            cls.channel = unique("gh:updates")
            cls.gateway_id = unique("gw")
            cls.server = redis_gateway(cls.redis.url, cls.stream, cls.channel, cls.gateway_id,
                                       *cls.extra_args(), bot_keys=cls.bot_keys).start()
        except BaseException:
            cls.redis.close()
            raise
        cls.r = cls.redis.client()

    @classmethod
    def tearDownClass(cls):
        try:
            problems = stop_and_check(cls.server)
        finally:
            cls.redis.close()
        if problems:
            raise AssertionError("\n".join(problems))

    async def publish(self, message):
        """PUBLISH on the class's channel; exactly one subscriber: this gateway."""
        receivers = await apublish(self.r, self.channel, message)
        self.assertEqual(receivers, 1, "the gateway is the one subscriber of its channel")
