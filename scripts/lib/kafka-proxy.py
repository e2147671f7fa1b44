"""A Kafka-protocol proxy in front of tansu that answers brokers-only
Metadata requests as Apache Kafka does, for the bench scripts.

A Metadata request with an empty topic list asks for the brokers alone
(librdkafka sends one on every connection). Kafka answers it with no topic;
tansu 0.6 answers it with every topic in the cluster, which costs each
client time that grows with the cluster. This proxy rewrites such a request
to name one topic that does not exist (auto-creation off), so tansu answers
with the brokers and that topic's error alone. Every Metadata answer's
brokers are made to advertise the proxy, so that clients keep to it. Every
other request and answer passes through unchanged.

    python3 scripts/lib/kafka-proxy.py LISTEN_PORT UPSTREAM_HOST:PORT
"""
import asyncio
import struct
import sys

listen_port, upstream = int(sys.argv[1]), sys.argv[2]
host, port = upstream.rsplit(":", 1)
METADATA = 3
FLEXIBLE = 9  # Metadata v9 and later use compact fields and tagged fields
NO_SUCH_TOPIC = b"sluice-bench-proxy-no-such-topic"


def uvarint(data, off):
    value = shift = 0
    while True:
        byte = data[off]
        off += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, off
        shift += 7


def skip_tags(data, off):
    count, off = uvarint(data, off)
    for _ in range(count):
        _, off = uvarint(data, off)
        size, off = uvarint(data, off)
        off += size
    return off


def skip_string(data, off, flexible):
    if flexible:
        size, off = uvarint(data, off)
        return off + max(size - 1, 0)
    (size,) = struct.unpack_from(">h", data, off)
    return off + 2 + max(size, 0)


def rewrite_request(frame):
    """A brokers-only Metadata request, naming a topic that does not exist."""
    key, version = struct.unpack_from(">hh", frame, 0)
    if key != METADATA or version < 4:  # below v4, naming a topic may create it
        return frame
    flexible = version >= FLEXIBLE
    off = skip_string(frame, 8, False)  # the client ID is never compact
    if flexible:
        off = skip_tags(frame, off)
    if flexible and frame[off] == 1:  # a compact array of no topic
        topic = (b"\x00" * 16 if version >= 10 else b"")
        topic += bytes([len(NO_SUCH_TOPIC) + 1]) + NO_SUCH_TOPIC + b"\x00"
        return frame[:off] + b"\x02" + topic + frame[off + 1 :]
    if not flexible and frame[off : off + 4] == b"\x00\x00\x00\x00":
        topic = struct.pack(">ih", 1, len(NO_SUCH_TOPIC)) + NO_SUCH_TOPIC
        return frame[:off] + topic + frame[off + 4 :]
    return frame


def rewrite_answer(frame, version):
    """A Metadata answer whose brokers advertise the proxy's port."""
    flexible = version >= FLEXIBLE
    data = bytearray(frame)
    off = 4  # the correlation ID
    if flexible:
        off = skip_tags(data, off)
    if version >= 3:
        off += 4  # throttle time
    if flexible:
        count, off = uvarint(data, off)
        count -= 1
    else:
        (count,) = struct.unpack_from(">i", data, off)
        off += 4
    for _ in range(max(count, 0)):
        off += 4  # node ID
        off = skip_string(data, off, flexible)
        struct.pack_into(">i", data, off, listen_port)
        off += 4
        if version >= 1:
            off = skip_string(data, off, flexible)  # rack
        if flexible:
            off = skip_tags(data, off)
    return bytes(data)


async def frames(reader):
    while True:
        head = await reader.readexactly(4)
        (size,) = struct.unpack(">i", head)
        yield await reader.readexactly(size)


async def forward(reader, writer, rewrite):
    try:
        async for frame in frames(reader):
            frame = rewrite(frame)
            writer.write(struct.pack(">i", len(frame)) + frame)
            await writer.drain()
    except (asyncio.IncompleteReadError, OSError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer):
    server_reader, server_writer = await asyncio.open_connection(host, int(port))
    metadata_versions = {}  # correlation ID -> version, of Metadata requests

    def request(frame):
        key, version, correlation = struct.unpack_from(">hhi", frame, 0)
        if key == METADATA:
            metadata_versions[correlation] = version
        return rewrite_request(frame)

    def answer(frame):
        (correlation,) = struct.unpack_from(">i", frame, 0)
        version = metadata_versions.pop(correlation, None)
        return frame if version is None else rewrite_answer(frame, version)

    await asyncio.gather(
        forward(client_reader, server_writer, request),
        forward(server_reader, client_writer, answer),
    )


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
