#!/usr/bin/env python3
"""A chat bot (Discord-bot style) that plays Click & Cook through a gatehouse gateway.

It reads chat lines, from standard input or a file, turns the ones that are commands into
game commands, sends them over the bot WebSocket (/ws/bot/{key}) in MessagePack, and answers
each with the game's reply, matched by correlation_id. Lines that are not commands (plain chat)
are ignored, as a bot in a busy channel would.

    !state             the bot's kitchen          (session)
    !cook [N]          cook N dishes, default 1   (cook {"count": N})
    !sell [N]          sell N dishes, default all (sell {"count": N})
    !buy NAME          buy knife, stove or waiter (upgrade_buy {"upgrade": NAME})
    !level             can the bot level up?      (level_check)
    !levelup           level up                   (level_up)
    !collect           collect passive dishes     (passive)
    !reset             start over                 (session_reset)
    !help

Usage:
    CHAT_BOT_KEY=KEY chat_bot.py --server ws://HOST:PORT [--script FILE] [--name NAME]

The key comes from the environment, not the command line, where every user of the machine
could read it in the process list. The gateway knows the bot as `bot:NAME` (NAME from the
server's --bot-key NAME:KEY); the game keeps one kitchen for it. Exit code: 0 when every
command was answered, 1 when the connection failed or a reply did not come in time.

Needs python3-websockets and python3-msgpack (Debian packages).
"""

import argparse
import asyncio
import itertools
import os
import secrets
import sys
import threading

import msgpack
import websockets

REPLY_TIMEOUT_S = 5.0
STATE_FIELDS = ("coins", "dishes", "xp", "level", "cook_power", "sell_price", "passive_rate")


def parse_chat(line):
    """(command type, payload) for a chat command; (None, text to answer) for a bad or unknown
    one; None for plain chat."""
    words = line.split()
    if not words or not words[0].startswith("!"):
        return None
    name, args = words[0][1:].lower(), words[1:]
    if name in ("cook", "sell"):
        if not args:
            return name, {}
        if len(args) == 1 and args[0].lstrip("-").isdigit():
            # Out-of-range counts go to the game as they are: its rules, its error.
            return name, {"count": int(args[0])}
        return None, f"usage: !{name} [NUMBER]"
    if name == "buy":
        if len(args) == 1:
            return "upgrade_buy", {"upgrade": args[0].lower()}
        return None, "usage: !buy knife|stove|waiter"
    simple = {"state": "session", "level": "level_check", "levelup": "level_up",
              "collect": "passive", "reset": "session_reset"}
    if name in simple and not args:
        return simple[name], {}
    if name == "help":
        return None, "commands: !state !cook [N] !sell [N] !buy NAME !level !levelup !collect !reset"
    return None, f"unknown command !{name}, try !help"


def describe(message):
    """The bot's answer to one game reply (a game.state, game.error or gateway error)."""
    payload = message.get("payload") or {}
    if message["type"] == "game.state":
        state = payload.get("state", {})
        text = " ".join(f"{k}={state.get(k)}" for k in STATE_FIELDS)
        text += " " + " ".join(f"{k}={v}" for k, v in sorted(state.get("upgrades", {}).items()))
        check = payload.get("level_check")
        if check is not None:
            text += (f" can_level_up={'yes' if check.get('can_level_up') else 'no'}"
                     f" xp_required={check.get('xp_required')}")
        return f"{payload.get('request')} ok: {text}"
    if message["type"] == "game.error":
        return f"{payload.get('request')} failed: {payload.get('code')} ({payload.get('message')})"
    # The gateway's own error: the command never reached the game (rate_limited, ...).
    return f"not sent: {payload.get('code')} ({payload.get('message')})"


class Bot:
    def __init__(self, ws):
        self.ws = ws
        # A random prefix per session: the gateway acks a correlation id it saw from this bot
        # within --dedupe-window as a retry, without appending it, so a restarted bot must
        # not count from bot-1 again.
        prefix = f"bot-{secrets.token_hex(6)}-"
        self.ids = (f"{prefix}{n}" for n in itertools.count(1))
        self.waiting = {}  # correlation_id -> future of the game's reply

    async def receive(self):
        """Routes every message: replies to the command that waits for them, the rest shown."""
        try:
            async for frame in self.ws:
                message = msgpack.unpackb(frame, raw=False)
                corr = message.get("correlation_id")
                kind = message.get("type")
                if kind == "ack":
                    continue  # on the bus; the game's answer is what the chat wants
                if corr in self.waiting and kind in ("game.state", "game.error", "error"):
                    self.waiting.pop(corr).set_result(message)
                else:
                    print(f"(update {kind})", flush=True)
        finally:
            # Closed (by the server, say, with 1001 on shutdown): nothing waits forever.
            for reply in self.waiting.values():
                if not reply.done():
                    reply.set_exception(ConnectionError("the gateway closed the connection"))

    async def ask(self, command, payload):
        corr = next(self.ids)
        reply = asyncio.get_running_loop().create_future()
        self.waiting[corr] = reply
        await self.ws.send(msgpack.packb({"type": command, "payload": payload,
                                          "correlation_id": corr}))
        try:
            return await asyncio.wait_for(reply, REPLY_TIMEOUT_S)
        finally:
            self.waiting.pop(corr, None)


def stdin_lines():
    """Lines typed or piped in, without blocking the event loop (which must keep answering
    the gateway's pings while nobody types): a thread reads, the loop awaits a queue."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    def read():
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line)
        loop.call_soon_threadsafe(queue.put_nowait, None)

    threading.Thread(target=read, daemon=True).start()

    async def lines():
        while (line := await queue.get()) is not None:
            yield line
    return lines()


async def file_lines(path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield line


async def chat(server, key, script, name):
    async with websockets.connect(f"{server}/ws/bot/{key}", subprotocols=["gatehouse.msgpack"],
                                  open_timeout=REPLY_TIMEOUT_S) as ws:
        welcome = msgpack.unpackb(await asyncio.wait_for(ws.recv(), REPLY_TIMEOUT_S), raw=False)
        who = welcome["payload"]["player_id"]
        print(f"connected as {who} (codec {welcome['payload']['codec']})", flush=True)
        bot = Bot(ws)
        receiver = asyncio.create_task(bot.receive())
        try:
            # The game wants a session before anything else.
            first = await bot.ask("session", {})
            print(f"{name}> {describe(first)}", flush=True)
            lines = file_lines(script) if script else stdin_lines()
            async for line in lines:
                parsed = parse_chat(line)
                if parsed is None:
                    continue
                print(f"> {line.strip()}", flush=True)
                command, payload = parsed
                if command is None:
                    print(f"{name}> {payload}", flush=True)
                    continue
                print(f"{name}> {describe(await bot.ask(command, payload))}", flush=True)
        finally:
            receiver.cancel()
            await asyncio.gather(receiver, return_exceptions=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True, help="ws://HOST:PORT of the gateway")
    parser.add_argument("--script", help="read chat lines from this file instead of stdin")
    parser.add_argument("--name", default="cookbot", help="how the bot signs its replies")
    args = parser.parse_args()
    key = os.environ.get("CHAT_BOT_KEY")
    if not key:
        parser.error("set CHAT_BOT_KEY to the bot's key")
    try:
        asyncio.run(chat(args.server.rstrip("/"), key, args.script, args.name))
    except (OSError, asyncio.TimeoutError, websockets.WebSocketException) as e:
        # The key is in the URL: name the failure, never the URL.
        print(f"{args.name}: {type(e).__name__}: {e}".replace(key, "[redacted]"),
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
