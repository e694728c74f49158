"""Connect as a player, send a command, print its ack and the next update.

Usage: python3 quickstart.py ws://127.0.0.1:8080 ACCESS_TOKEN [json|msgpack|protobuf]
"""
import asyncio
import sys

import gatehouse_client


async def main(url, token, codec):
    async with await gatehouse_client.connect(url, token, codec=codec) as client:
        print("welcome:", client.welcome.payload["player_id"], flush=True)
        try:
            ack = await client.command("player_action", {"move": [1, 2]})
            print("ack:", ack.correlation_id, ack.payload["stream_id"], flush=True)
        except gatehouse_client.CommandError as e:  # e.g. e.code == "rate_limited"
            print("refused:", e.code, e.message, flush=True)
            return 1
        update = await client.next_update(timeout=10)
        print("update:", update.type, update.payload, flush=True)
    return 0


if __name__ == "__main__":
    codec = sys.argv[3] if len(sys.argv) > 3 else "msgpack"
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2], codec)))
