"""RawSocket transport details: handshake replies and PING/PONG, spoken byte by byte."""

from __future__ import annotations

import asyncio
import contextlib
import os

import pytest

from junction_harness import (
    RAWSOCKET_SERIALIZER_IDS,
    RECV_TIMEOUT,
    WELCOME,
    rawsocket_frame,
    rawsocket_handshake_request,
)

PING, PONG = 1, 2


@contextlib.asynccontextmanager
async def tcp_connection(router):
    """A plain TCP connection to the router: (reader, writer), closed on exit."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(router.host, router.port), RECV_TIMEOUT
    )
    try:
        yield reader, writer
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (ConnectionError, asyncio.TimeoutError):
            pass


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_rawsocket_handshake_echoes_requested_serializer(router, serializer):
    async with tcp_connection(router) as (reader, writer):
        sid = RAWSOCKET_SERIALIZER_IDS[serializer]
        writer.write(rawsocket_handshake_request(sid, max_len_exp=0x9))
        await writer.drain()

        reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)

        assert reply[0] == 0x7F, reply.hex()
        assert reply[1] & 0x0F == sid, f"reply {reply.hex()} does not echo serializer {sid}"
        assert reply[2:] == b"\x00\x00", reply.hex()


# Error replies are 0x7F, EEEE 0000, then two zero bytes. EEEE = 1: serializer unsupported;
# EEEE = 3: use of reserved bits (unsupported feature).
@pytest.mark.parametrize(
    "request_bytes,expected_reply",
    [
        (rawsocket_handshake_request(5), "7f100000"),
        (rawsocket_handshake_request(15), "7f100000"),
        # A valid serializer (JSON), but the two reserved bytes are not zero.
        (bytes([0x7F, 0xF1, 0x00, 0x01]), "7f300000"),
    ],
    ids=["flatbuffers", "reserved15", "reserved-bits"],
)
async def test_rawsocket_handshake_refused_gets_error_reply_then_close(
    router, request_bytes, expected_reply
):
    async with tcp_connection(router) as (reader, writer):
        writer.write(request_bytes)
        await writer.drain()

        try:
            reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        except asyncio.IncompleteReadError as e:
            pytest.fail(f"router closed the connection after {e.partial.hex()!r} instead of "
                        f"replying {expected_reply}")

        assert reply.hex() == expected_reply
        # ...after which the router closes the connection.
        rest = await asyncio.wait_for(reader.read(), RECV_TIMEOUT)
        assert rest == b"", f"unexpected bytes after the error reply: {rest.hex()}"


async def test_rawsocket_ping_before_hello_gets_pong_with_same_payload(clients):
    peer = await clients.raw("rawsocket", "json")
    payload = b"junction-ping\x00\xff" + os.urandom(16)
    await peer.send_rawsocket_frame(PING, payload)

    kind, echoed = await peer.recv_rawsocket_frame()

    assert kind == PONG, f"expected PONG frame (2), got kind {kind} payload {echoed!r}"
    assert echoed == payload


async def test_rawsocket_ping_during_session_gets_pong_and_session_continues(clients):
    peer = await clients.raw("rawsocket", "msgpack")
    await peer.join()
    payload = os.urandom(100)

    await peer.send_rawsocket_frame(PING, payload)
    kind, echoed = await peer.recv_rawsocket_frame()

    assert (kind, echoed) == (PONG, payload)
    # The session is still usable afterwards.
    await peer.subscribe("com.example.after_ping")


async def test_rawsocket_empty_ping_gets_empty_pong(clients):
    peer = await clients.raw("rawsocket", "cbor")
    await peer.send_rawsocket_frame(PING, b"")

    assert await peer.recv_rawsocket_frame() == (PONG, b"")


async def test_rawsocket_handshake_and_hello_sent_in_one_segment_are_both_handled(router):
    async with tcp_connection(router) as (reader, writer):
        hello = b'[1,"realm1",{"roles":{"caller":{},"subscriber":{}}}]'
        writer.write(rawsocket_handshake_request(1) + rawsocket_frame(0, hello))
        await writer.drain()

        reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        assert reply[0] == 0x7F and reply[1] & 0x0F == 1, reply.hex()
        header = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        body = await asyncio.wait_for(
            reader.readexactly(int.from_bytes(header[1:], "big")), RECV_TIMEOUT
        )
        assert header[0] == 0, header.hex()
        assert body.startswith(b"[%d," % WELCOME), body


@pytest.mark.parametrize("first_byte", [0x03, 0x07, 0x10], ids=["type3", "type7", "reserved-bit"])
async def test_rawsocket_frame_with_unknown_type_or_reserved_bits_fails_the_connection(
    clients, first_byte
):
    peer = await clients.raw("rawsocket", "json")
    await peer.join()

    await peer.send_rawsocket_frame(first_byte, b"[]")

    # The router fails the connection (it may say ABORT first).
    seen = await peer.wait_closed()
    assert all(msg[0] == 3 for msg in seen), f"unexpected messages before close: {seen!r}"
