"""Slowloris peers for bench/slowloris.sh: N connections, each sending one byte every INTERVAL
seconds and never a newline, reading back whatever the server echoes. Runs until killed.

    python3 bench/slow_peers.py --port P [--conns N] [--interval S]
"""
import argparse
import asyncio


async def slow_peer(port, interval):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    while True:
        writer.write(b"x")
        await writer.drain()
        await asyncio.sleep(interval)
        if reader._buffer:  # drop what the server echoed
            await reader.read(len(reader._buffer))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--interval", type=float, default=0.1)
    args = ap.parse_args()
    peers = [asyncio.create_task(slow_peer(args.port, args.interval)) for _ in range(args.conns)]
    print(f"slow_peers: {args.conns} connections, one byte every {args.interval} s", flush=True)
    await asyncio.gather(*peers)


asyncio.run(main())
