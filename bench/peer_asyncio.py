"""Echo servers on CPython's asyncio and on uvloop, the peers tulip is compared with.

    /usr/bin/python3 bench/peer_asyncio.py --loop asyncio|uvloop --api protocol|streams --port N

Listens on 127.0.0.1:N, one thread. The protocol flavour writes back in data_received (the
fastest way asyncio offers); the streams flavour is what most asyncio code looks like: a
coroutine per connection reading up to 64 KiB and awaiting drain() after each write. SIGINT or
SIGTERM ends it cleanly (exit status 0).
"""
import argparse
import asyncio
import signal


class EchoProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def echo_stream(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve(api, port):
    loop = asyncio.get_running_loop()
    if api == "protocol":
        server = await loop.create_server(EchoProtocol, "127.0.0.1", port)
    else:
        server = await asyncio.start_server(echo_stream, "127.0.0.1", port)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with server:
        await stop


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    parser.add_argument("--api", choices=["protocol", "streams"], default="protocol")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        uvloop.install()
    asyncio.run(serve(args.api, args.port))


if __name__ == "__main__":
    main()
