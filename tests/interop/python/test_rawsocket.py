"""RawSocket transport details: handshake replies and PING/PONG, spoken byte by byte."""

from __future__ import annotations

import asyncio
import os

import pytest

from junction_harness import (
    RAWSOCKET_SERIALIZER_IDS,
    RECV_TIMEOUT,
    WELCOME,
    RawPeer,
    rawsocket_frame,
    rawsocket_handshake_request,
)

PING, PONG = 1, 2


async def open_tcp(router):
    return await asyncio.wait_for(asyncio.open_connection(router.host, router.port), RECV_TIMEOUT)


async def close_tcp(writer):
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (ConnectionError, asyncio.TimeoutError):
        pass


@pytest.mark.parametrize("serializer", ["json", "msgpack", "cbor"])
async def test_rawsocket_handshake_echoes_requested_serializer(router, serializer):
    reader, writer = await open_tcp(router)
    try:
        sid = RAWSOCKET_SERIALIZER_IDS[serializer]
        writer.write(rawsocket_handshake_request(sid, max_len_exp=0x9))
        await writer.drain()

        reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)

        assert reply[0] == 0x7F, reply.hex()
        assert reply[1] & 0x0F == sid, f"reply {reply.hex()} does not echo serializer {sid}"
        assert reply[2:] == b"\x00\x00", reply.hex()
    finally:
        await close_tcp(writer)


@pytest.mark.parametrize("serializer_id", [5, 15], ids=["flatbuffers", "reserved15"])
async def test_rawsocket_handshake_with_unsupported_serializer_gets_error_reply(router, serializer_id):
    reader, writer = await open_tcp(router)
    try:
        writer.write(rawsocket_handshake_request(serializer_id))
        await writer.drain()

        try:
            reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        except asyncio.IncompleteReadError as e:
            pytest.fail(f"router closed the connection after {e.partial.hex()!r} instead of "
                        "replying 7f100000")

        # Error reply: 0x7F, EEEE 0000 with EEEE = 1 "serializer unsupported", then two zero bytes.
        assert reply == bytes([0x7F, 0x10, 0x00, 0x00]), reply.hex()
        # ...after which the router closes the connection.
        rest = await asyncio.wait_for(reader.read(), RECV_TIMEOUT)
        assert rest == b"", f"unexpected bytes after the error reply: {rest.hex()}"
    finally:
        await close_tcp(writer)


async def test_rawsocket_ping_before_hello_gets_pong_with_same_payload(router):
    peer = await RawPeer.open(router, "rawsocket", "json")
    try:
        payload = b"junction-ping\x00\xff" + os.urandom(16)
        await peer.send_rawsocket_frame(PING, payload)

        kind, echoed = await peer.recv_rawsocket_frame()

        assert kind == PONG, f"expected PONG frame (2), got kind {kind} payload {echoed!r}"
        assert echoed == payload
    finally:
        await peer.close()


async def test_rawsocket_ping_during_session_gets_pong_and_session_continues(router):
    peer = await RawPeer.open(router, "rawsocket", "msgpack")
    try:
        await peer.join()
        payload = os.urandom(100)

        await peer.send_rawsocket_frame(PING, payload)
        kind, echoed = await peer.recv_rawsocket_frame()

        assert (kind, echoed) == (PONG, payload)
        # The session is still usable afterwards.
        request = peer.next_request_id()
        await peer.send([32, request, {}, "com.example.after_ping"])
        reply = await peer.recv()
        assert reply[:2] == [33, request], reply
    finally:
        await peer.close()


async def test_rawsocket_empty_ping_gets_empty_pong(router):
    peer = await RawPeer.open(router, "rawsocket", "cbor")
    try:
        await peer.send_rawsocket_frame(PING, b"")

        assert await peer.recv_rawsocket_frame() == (PONG, b"")
    finally:
        await peer.close()


async def test_rawsocket_handshake_and_hello_sent_in_one_segment_are_both_handled(router):
    reader, writer = await open_tcp(router)
    try:
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
    finally:
        await close_tcp(writer)


async def test_rawsocket_handshake_with_reserved_bits_set_gets_error_reply(router):
    reader, writer = await open_tcp(router)
    try:
        # Valid serializer (JSON) but the two reserved bytes are not zero.
        writer.write(bytes([0x7F, 0xF1, 0x00, 0x01]))
        await writer.drain()

        try:
            reply = await asyncio.wait_for(reader.readexactly(4), RECV_TIMEOUT)
        except asyncio.IncompleteReadError as e:
            pytest.fail(f"router closed the connection after {e.partial.hex()!r} instead of "
                        "replying 7f300000")

        # EEEE = 3: "use of reserved bits (unsupported feature)".
        assert reply == bytes([0x7F, 0x30, 0x00, 0x00]), reply.hex()
    finally:
        await close_tcp(writer)


@pytest.mark.parametrize("first_byte", [0x03, 0x07, 0x10], ids=["type3", "type7", "reserved-bit"])
async def test_rawsocket_frame_with_unknown_type_or_reserved_bits_fails_the_connection(
    router, first_byte
):
    peer = await RawPeer.open(router, "rawsocket", "json")
    try:
        await peer.join()

        await peer.send_rawsocket_frame(first_byte, b"[]")

        # The router fails the connection (it may say ABORT first).
        seen = await peer.wait_closed()
        assert all(msg[0] == 3 for msg in seen), f"unexpected messages before close: {seen!r}"
    finally:
        await peer.close()
