"""A TCP proxy that holds every chunk a client sends DELAY seconds before
passing it on, so that each request to the upstream server takes at least
DELAY longer: simulated network latency for the bench scripts.

    python3 scripts/lib/delay-proxy.py LISTEN_PORT UPSTREAM_HOST:PORT DELAY
"""
import asyncio
import sys

listen_port, upstream, delay = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
host, port = upstream.rsplit(":", 1)


async def pipe(reader, writer, hold):
    try:
        while data := await reader.read(65536):
            if hold:
                await asyncio.sleep(hold)
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection(host, int(port))
    await asyncio.gather(
        pipe(client_reader, server_writer, delay), pipe(server_reader, client_writer, 0)
    )


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
