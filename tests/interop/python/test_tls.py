"""TLS end to end: WebSocket over TLS (wss://), RawSocket over TLS and HTTPS on the ``[tls]``
listen address, with Autobahn|Python (its ``ApplicationSession`` and its ``Component`` with a
``tls`` endpoint) and xconn, authenticating with ticket, salted and unsalted WAMP-CRA,
Cryptosign (also bound to the connection's ``tls-unique`` over TLS 1.2) and WAMP-SCRAM (wrong
secrets are refused over TLS too); the session reports ``transport.tls``; SIGHUP reloads the
certificate (docs/security.md, docs/configuration.md).

Each test makes its own self-signed certificate for 127.0.0.1 with the ``cryptography`` package
(installed with ``autobahn[encryption]``) and starts a router whose configuration names a free
port for ``[tls] listen``; the plain ``--listen`` port stays plain. Clients trust the certificate
through an ``ssl.SSLContext`` that holds it.

Nothing here sleeps to wait for the router: after SIGHUP the test waits (bounded) for the log
line that says the reload is done, then makes a new handshake.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest
import pytest_asyncio
import xconn
from autobahn.wamp.cryptosign import CryptosignKey
from autobahn.wamp.exception import ApplicationError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from wampproto.exception import ApplicationError as XconnAbort
from xconn.async_client import connect as xconn_connect

from conftest import ClientPool
from junction_harness import (
    RECV_TIMEOUT,
    STARTUP_TIMEOUT,
    JoinFailed,
    RouterProcess,
    RouterStartError,
    admin_realm_config,
    cryptosign_answer,
    free_port,
    join_autobahn_auth,
    join_with_component,
    junction_binary,
    scram,
    ticket_answer,
    wampcra_answer,
    wampcra_unsalted_answer,
    xconn_serializer,
)

SECURE = "secure"
JOE_SECRET = "joe-tls-secret"
ROOT_SECRET = "root-tls-secret"
UNA_SECRET = "una-tls-secret-unsalted"
ANN_SEED = os.urandom(32)
ANN_KEY = CryptosignKey.from_bytes(ANN_SEED)

# TlsClients.join's name for WAMP-CRA as una, whose challenges carry no salt.
UNSALTED_WAMPCRA = "wampcra-unsalted"
AUTHMETHOD = {UNSALTED_WAMPCRA: "wampcra"}

AUTHENTICATION_FAILED = "wamp.error.authentication_failed"

RELOADED = "TLS certificate reloaded"
NOT_RELOADED = "TLS certificate not reloaded"


# ------------------------------------------------------------------------------------------------
# Certificates and the router
# ------------------------------------------------------------------------------------------------


class Certificate:
    """A certificate for 127.0.0.1 and localhost, written as PEM files: self-signed, or signed
    by ``issuer``; ``ca=True`` makes a certificate authority (to sign client certificates)."""

    def __init__(self, common_name: str, issuer: "Certificate | None" = None, ca: bool = False):
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.datetime.now(datetime.timezone.utc)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(issuer.cert.subject if issuer else name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost"),
            ]), critical=False)
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(issuer.key if issuer else self.key, hashes.SHA256())
        )
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)
        self.key_pem = self.key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())

    def write(self, cert_path, key_path) -> None:
        cert_path.write_bytes(self.cert_pem)
        key_path.write_bytes(self.key_pem)


def trusting(*certificates: Certificate) -> ssl.SSLContext:
    """A client context that trusts exactly these certificates (and checks the host name)."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.load_verify_locations(
        cadata="".join(c.cert_pem.decode("ascii") for c in certificates))
    return context


def config(tls_port: int, cert_path, key_path, client_ca=None) -> str:
    client_ca = f'client_ca = "{client_ca}"' if client_ca else ""
    return f"""
[tls]
listen = ["127.0.0.1:{tls_port}"]
cert = "{cert_path}"
key = "{key_path}"
{client_ca}

[[realms]]
name = "{SECURE}"
anonymous = false

[realms.security]
authmethods = ["ticket", "wampcra", "cryptosign", "scram"]

[[realms.security.users]]
authid = "joe"
password = "{JOE_SECRET}"
groups = ["user"]

# Opted in to unsalted WAMP-CRA: her challenges carry no salt.
[[realms.security.users]]
authid = "una"
password = "{UNA_SECRET}"
wampcra_unsalted = true
groups = ["user"]

[[realms.security.users]]
authid = "ann"
authorized_keys = ["{ANN_KEY.public_key()}"]
groups = ["user"]

[[realms.security.groups]]
name = "user"

[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "wamp.session."
match = "prefix"
roles = ["user"]

# joe manages the sources of his realm (the command line over wss:// joins as him).
[[realms.security.grants]]
permissions = ["wamp.call"]
uri = "bondy.source."
match = "prefix"
roles = ["user"]

""" + admin_realm_config(ROOT_SECRET, ["ticket"], ["wamp.call"], "bondy.cert_manager.")


class TlsRouter:
    """A router with a ``[tls]`` listener, and the certificate it was started with."""

    def __init__(self, process: RouterProcess, tls_port: int, certificate: Certificate,
                 cert_path, key_path):
        self.process = process
        self.tls_port = tls_port
        self.certificate = certificate
        self.cert_path = cert_path
        self.key_path = key_path

    @property
    def wss_url(self) -> str:
        return f"wss://127.0.0.1:{self.tls_port}/ws"


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def tls_router(request, tmp_path):
    yield from started_tls_router(request, tmp_path)


def started_tls_router(request, tmp_path, client_ca=None):
    """Starts a router with a TLS listener (asking for client certificates signed by the PEM
    file ``client_ca`` when given), yields it, and stops it, failing the test if it crashed."""
    certificate = Certificate("junction-test-1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.write(cert_path, key_path)
    last_error = ""
    # The TLS port is picked before the router starts: a parallel test may take it first, in
    # which case the router exits and we try another one.
    for _attempt in range(3):
        tls_port = free_port()
        process = RouterProcess(junction_binary(), tmp_path,
                                config=config(tls_port, cert_path, key_path, client_ca))
        request.node.junction_routers = getattr(request.node, "junction_routers", []) + [process]
        try:
            process.start()
        except RouterStartError as e:
            last_error = str(e)
            continue
        # The plain port accepts; the TLS one is bound at the same time, but check it too.
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not accepts(tls_port) and process.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        if accepts(tls_port):
            break
        last_error = process.log_tail()
        process.stop()
    else:
        pytest.fail(f"no router with a TLS listener: {last_error}", pytrace=False)
    router = TlsRouter(process, tls_port, certificate, cert_path, key_path)
    yield router
    crashed = not process.is_running()
    exit_code = process.proc.poll()
    process.stop()
    if crashed:
        pytest.fail(f"junction exited during the test with code {exit_code}; log:\n"
                    f"{process.log_tail()}", pytrace=False)


class TlsClients(ClientPool):
    """Sessions over the TLS listener (closed at teardown)."""

    def __init__(self, router: TlsRouter):
        super().__init__(router.process)
        self.tls = router

    async def join(self, method: str, transport: str = "websocket", serializer: str = "json",
                   context: ssl.SSLContext | None = None, tls: bool = True,
                   secret: str | None = None):
        """Join realm secure with ``method``: ticket, (salted) wampcra or scram as joe,
        cryptosign as ann, or ``UNSALTED_WAMPCRA`` (wampcra as una). ``secret`` replaces the
        user's password. JoinFailed on ABORT."""
        if method == "scram":
            authenticator, answer = scram("joe", secret or JOE_SECRET)
            authid, extra = "joe", authenticator.authextra
        else:
            authid, answer, extra = {
                "ticket": ("joe", ticket_answer(secret or JOE_SECRET), None),
                "wampcra": ("joe", wampcra_answer(secret or JOE_SECRET), None),
                UNSALTED_WAMPCRA: ("una", wampcra_unsalted_answer(secret or UNA_SECRET), None),
                "cryptosign": ("ann", cryptosign_answer(ANN_KEY),
                               {"pubkey": ANN_KEY.public_key()}),
            }[method]
        if tls:
            context = context or trusting(self.tls.certificate)
            where = {"port": self.tls.tls_port, "ssl": context}
        else:
            where = {}
        session = await join_autobahn_auth(self.router, SECURE, [AUTHMETHOD.get(method, method)],
                                           authid, answer, authextra=extra, transport=transport,
                                           serializer=serializer, **where)
        self._autobahn.append(session)
        return session

    async def xconn_wss(self, authenticator, serializer: str = "json"):
        session = await asyncio.wait_for(
            xconn_connect(self.tls.wss_url, SECURE, authenticator, xconn_serializer(serializer)),
            RECV_TIMEOUT,
        )
        self._xconn.append(session)
        return session


@pytest_asyncio.fixture
async def tls(tls_router):
    pool = TlsClients(tls_router)
    yield pool
    await pool.close()


async def own_transport(session) -> dict:
    """The ``transport`` of the session as ``wamp.session.get`` reports it."""
    sid = session.joined.result().session
    info = await asyncio.wait_for(session.call("wamp.session.get", sid), RECV_TIMEOUT)
    return info["transport"]


async def presented_certificate(port: int, context: ssl.SSLContext) -> bytes:
    """The DER certificate the router presents in a new TLS handshake on ``port``."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context), RECV_TIMEOUT)
    try:
        return writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        writer.close()


async def wait_for_log(process: RouterProcess, text: str, count: int) -> None:
    """Until ``text`` appears ``count`` times in the router's log (bounded)."""
    deadline = time.monotonic() + RECV_TIMEOUT
    while process.log_path.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline or not process.is_running():
            pytest.fail(f"no {text!r} (x{count}) in the router log:\n{process.log_tail()}")
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------------------------------------
# Sessions over TLS
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ticket", "wampcra", UNSALTED_WAMPCRA, "cryptosign", "scram"])
@pytest.mark.parametrize("transport", ["websocket", "rawsocket"])
async def test_autobahn_authenticates_over_tls_and_the_session_knows_it(tls, transport, method):
    session = await tls.join(method, transport)
    details = session.joined.result()
    assert (details.realm, details.authmethod) == (SECURE, AUTHMETHOD.get(method, method)), (
        details)
    assert details.authid == {UNSALTED_WAMPCRA: "una", "cryptosign": "ann"}.get(method, "joe")
    transport_info = await own_transport(session)
    assert transport_info["tls"] is True, transport_info
    assert transport_info["type"] == transport, transport_info


@pytest.mark.parametrize("method", ["ticket", "wampcra", UNSALTED_WAMPCRA, "scram"])
@pytest.mark.parametrize("transport", ["websocket", "rawsocket"])
async def test_a_wrong_secret_is_refused_over_tls(tls, transport, method):
    with pytest.raises(JoinFailed) as refused:
        await tls.join(method, transport, secret="not-the-secret")
    assert refused.value.reason == AUTHENTICATION_FAILED, refused.value


@pytest.mark.parametrize("transport,serializer",
                         [("websocket", "msgpack"), ("websocket", "cbor"),
                          ("rawsocket", "msgpack"), ("rawsocket", "cbor")])
async def test_every_serializer_works_over_tls(tls, transport, serializer):
    session = await tls.join("wampcra", transport, serializer)
    assert (await own_transport(session))["tls"] is True


async def test_the_plain_listener_stays_plain(tls):
    for transport in ("websocket", "rawsocket"):
        session = await tls.join("ticket", transport, tls=False)
        assert (await own_transport(session))["tls"] is False


@pytest.mark.parametrize("kind", ["rawsocket", "websocket"])
async def test_autobahn_component_with_a_tls_endpoint(tls_router, kind):
    """Autobahn's own transport configuration: ``endpoint: {type: tcp, ..., tls: {trust_root}}``
    and a Cryptosign ``authentication`` setting."""
    transport_config = {
        "type": kind,
        "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": tls_router.tls_port,
                     "tls": {"trust_root": str(tls_router.cert_path)}},
    }
    if kind == "websocket":
        transport_config.update(url=tls_router.wss_url, serializers=["json"])
    else:
        transport_config.update(serializer="json")

    async def own_transport_info(session, details):
        return (await session.call("wamp.session.get", details.session))["transport"]

    details, transport = await join_with_component(
        transport_config, SECURE, {"cryptosign": {"authid": "ann", "privkey": ANN_SEED.hex()}},
        own_transport_info)
    assert (details.authid, details.authmethod) == ("ann", "cryptosign"), details
    assert (transport["type"], transport["tls"]) == (kind, True), transport


def tls_context(router, maximum_version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client context that trusts the router's certificate, up to ``maximum_version``."""
    context = ssl.create_default_context(cafile=str(router.cert_path))
    context.maximum_version = maximum_version
    return context


def bound_component(router, kind: str, context: ssl.SSLContext) -> tuple[dict, dict]:
    """Transport and authentication of an Autobahn ``Component`` that joins as ann with
    cryptosign bound to the connection's ``tls-unique`` (Autobahn|Python's only binding: the
    SHA-256 of the TLS Finished message, from Python's ``ssl``, i.e. OpenSSL)."""
    transport = {"type": kind,
                 "endpoint": {"type": "tcp", "host": "127.0.0.1", "port": router.tls_port,
                              "tls": context}}
    if kind == "websocket":
        transport.update(url=router.wss_url, serializers=["json"])
    else:
        transport.update(serializer="json")
    authentication = {"cryptosign": {"authid": "ann", "privkey": ANN_SEED.hex(),
                                     "authextra": {"channel_binding": "tls-unique"}}}
    return transport, authentication


async def refused_bound_join(router, maximum_version: ssl.TLSVersion) -> JoinFailed:
    """The refusal of a ``bound_component`` join over WebSocket (AUTHENTICATION_FAILED)."""
    transport, authentication = bound_component(router, "websocket",
                                                tls_context(router, maximum_version))
    with pytest.raises(JoinFailed) as refused:
        await join_with_component(transport, SECURE, authentication)
    assert refused.value.reason == AUTHENTICATION_FAILED, refused.value
    return refused.value


# The TLS 1.2 PRF hashes with the cipher suite's hash: both kinds.
@pytest.mark.parametrize("kind,cipher", [("websocket", "ECDHE-ECDSA-AES256-GCM-SHA384"),
                                         ("websocket", "ECDHE-ECDSA-AES128-GCM-SHA256"),
                                         ("rawsocket", "ECDHE-ECDSA-CHACHA20-POLY1305")])
async def test_autobahn_joins_with_cryptosign_bound_to_tls_unique_over_tls_1_2(tls_router, kind,
                                                                                cipher):
    context = tls_context(tls_router, ssl.TLSVersion.TLSv1_2)
    context.set_ciphers(cipher)
    transport, authentication = bound_component(tls_router, kind, context)

    async def own_transport_info(session, details):
        return (await session.call("wamp.session.get", details.session))["transport"]

    details, info = await join_with_component(transport, SECURE, authentication,
                                              own_transport_info)
    assert (details.authid, details.authmethod) == ("ann", "cryptosign"), details
    assert info["tls"] is True, info


async def test_a_signature_bound_to_another_tls_unique_is_refused(tls_router, monkeypatch):
    """What a relay would send: the signature is bound to another channel than the router's
    end of this one (Autobahn is made to report another channel id than its own)."""
    import autobahn.asyncio.websocket as autobahn_websocket

    monkeypatch.setattr(autobahn_websocket, "transport_channel_id",
                        lambda *_args: bytes(range(32)))
    refused = await refused_bound_join(tls_router, ssl.TLSVersion.TLSv1_2)
    # Refused at AUTHENTICATE (the signature), not at HELLO (the binding was accepted).
    assert "were not accepted" in refused.message, refused


async def test_tls_unique_over_tls_1_3_is_refused_with_what_to_do(tls_router):
    """TLS 1.3 defines no tls-unique (Python's ssl hands out a TLS 1.3 Finished message all
    the same): the join is refused at HELLO with a message naming what works instead."""
    refused = await refused_bound_join(tls_router, ssl.TLSVersion.TLSv1_3)
    assert "tls-unique needs a TLS 1.2 connection" in refused.message, refused
    assert "tls-exporter over TLS 1.3" in refused.message, refused


class RecordingWampCra(xconn.WAMPCRAAuthenticator):
    """xconn's WAMP-CRA authenticator (salted when the challenge has a salt, else keyed with the
    secret itself), keeping the ``extra`` of each CHALLENGE it answers."""

    def __init__(self, authid: str, secret: str):
        super().__init__(authid, secret, {})
        self.challenges = []

    def authenticate(self, challenge):
        self.challenges.append(challenge.extra)
        return super().authenticate(challenge)


async def test_xconn_over_wss(tls, tls_router, monkeypatch):
    """xconn takes no SSL context: its wss:// connections use Python's default trust store,
    which ``SSL_CERT_FILE`` points at the test certificate. joe's WAMP-CRA challenge is salted,
    una's is not."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_router.cert_path))
    salted = RecordingWampCra("joe", JOE_SECRET)
    unsalted = RecordingWampCra("una", UNA_SECRET)
    for authenticator, serializer, authid in [
        (xconn.TicketAuthenticator("joe", JOE_SECRET, {}), "json", "joe"),
        (salted, "msgpack", "joe"),
        (unsalted, "json", "una"),
        (xconn.CryptoSignAuthenticator("ann", ANN_SEED.hex(), {}), "cbor", "ann"),
    ]:
        session = await tls.xconn_wss(authenticator, serializer)
        details = session._base_session.session_details
        assert (details.realm, details.authid) == (SECURE, authid), details
        result = await asyncio.wait_for(session.call("wamp.session.get", [details.session_id]),
                                        RECV_TIMEOUT)
        transport = result.args[0]["transport"]
        assert (transport["type"], transport["tls"]) == ("websocket", True), transport
    [salted_extra] = salted.challenges
    assert {"challenge", "salt", "iterations", "keylen"} <= set(salted_extra), salted_extra
    assert [set(extra) for extra in unsalted.challenges] == [{"challenge"}], unsalted.challenges


async def test_xconn_over_wss_refuses_wrong_secrets(tls, tls_router, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_router.cert_path))
    for authenticator in [
        xconn.TicketAuthenticator("joe", "not-the-secret", {}),
        xconn.WAMPCRAAuthenticator("joe", "not-the-secret", {}),
        xconn.WAMPCRAAuthenticator("una", "not-the-secret", {}),
        xconn.CryptoSignAuthenticator("ann", os.urandom(32).hex(), {}),
    ]:
        with pytest.raises(XconnAbort) as refused:
            await tls.xconn_wss(authenticator)
        assert refused.value.message == AUTHENTICATION_FAILED, (authenticator, refused.value)


async def test_a_client_that_does_not_trust_the_certificate_is_refused(tls):
    stranger = Certificate("someone-else")
    with pytest.raises(ssl.SSLCertVerificationError):
        await tls.join("ticket", "websocket", context=trusting(stranger))
    with pytest.raises(ssl.SSLCertVerificationError):
        await tls.join("ticket", "rawsocket", context=ssl.create_default_context())


async def test_the_tls_port_speaks_only_tls(tls_router):
    """A plain RawSocket handshake on the TLS port gets no RawSocket answer."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", tls_router.tls_port), RECV_TIMEOUT)
    try:
        writer.write(bytes([0x7F, 0xF1, 0, 0]))
        await writer.drain()
        try:
            reply = await asyncio.wait_for(reader.read(4), RECV_TIMEOUT)
        except ConnectionError:
            reply = b""
        assert not reply.startswith(b"\x7f"), reply
    finally:
        writer.close()


async def test_https_on_the_tls_port(tls_router):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", tls_router.tls_port, ssl=trusting(tls_router.certificate)), RECV_TIMEOUT)
    try:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), RECV_TIMEOUT)
        assert status.startswith(b"HTTP/1.1 200"), status
    finally:
        writer.close()


# ------------------------------------------------------------------------------------------------
# Certificate reload
# ------------------------------------------------------------------------------------------------


async def test_sighup_reloads_the_certificate_and_keeps_serving(tls, tls_router):
    old = tls_router.certificate
    process = tls_router.process
    before = await tls.join("ticket", "websocket")
    both = trusting(old, Certificate("unused"))
    assert await presented_certificate(tls_router.tls_port, both) == old.der

    new = Certificate("junction-test-2")
    new.write(tls_router.cert_path, tls_router.key_path)
    process.proc.send_signal(signal.SIGHUP)
    await wait_for_log(process, RELOADED, 1)

    # New handshakes present the new certificate...
    assert await presented_certificate(tls_router.tls_port, trusting(old, new)) == new.der
    for transport in ("websocket", "rawsocket"):
        session = await tls.join("cryptosign", transport, context=trusting(new))
        assert (await own_transport(session))["tls"] is True
    with pytest.raises(ssl.SSLCertVerificationError):
        await tls.join("ticket", "rawsocket", context=trusting(old))
    # ... and the session made before the reload goes on.
    assert (await own_transport(before))["tls"] is True

    # A broken file is not taken: the previous certificate stays.
    tls_router.cert_path.write_text("not a certificate\n")
    process.proc.send_signal(signal.SIGHUP)
    await wait_for_log(process, NOT_RELOADED, 1)
    assert await presented_certificate(tls_router.tls_port, trusting(old, new)) == new.der
    session = await tls.join("wampcra", "rawsocket", context=trusting(new))
    assert (await own_transport(session))["tls"] is True
    assert process.is_running()


async def test_the_admin_api_rotates_the_certificate(tls, tls_router):
    """``bondy.cert_manager.rotate_all`` and ``rotate_listener("wamp_tls")`` (Bondy's names) do
    what SIGHUP does, from a session of the admin realm; broken files leave the certificate in
    use, and the caller is told why."""
    root = await join_autobahn_auth(tls_router.process, "junction.admin", ["ticket"], "root",
                                    ticket_answer(ROOT_SECRET))
    tls._autobahn.append(root)
    old = tls_router.certificate
    for procedure, args in (("bondy.cert_manager.rotate_all", ()),
                            ("bondy.cert_manager.rotate_listener", ("wamp_tls",))):
        new = Certificate(f"junction-test-{procedure}")
        new.write(tls_router.cert_path, tls_router.key_path)
        assert await asyncio.wait_for(root.call(procedure, *args), RECV_TIMEOUT) is None
        assert await presented_certificate(tls_router.tls_port, trusting(old, new)) == new.der
        old = new

    tls_router.cert_path.write_text("not a certificate\n")
    with pytest.raises(ApplicationError) as e:
        await asyncio.wait_for(root.call("bondy.cert_manager.rotate_all"), RECV_TIMEOUT)
    assert e.value.error == "bondy.error.invalid_data", e.value
    assert "the previous one stays" in e.value.args[0], e.value
    assert await presented_certificate(tls_router.tls_port, trusting(old)) == old.der
    with pytest.raises(ApplicationError) as e:
        await asyncio.wait_for(root.call("bondy.cert_manager.rotate_listener", "admin_api_https"),
                               RECV_TIMEOUT)
    assert e.value.error == "wamp.error.invalid_argument", e.value


# ------------------------------------------------------------------------------------------------
# The command line over wss://
# ------------------------------------------------------------------------------------------------


def cli_over_tls(tls_router, tmp_path, *args: str, ca_file=None,
                 client=None) -> subprocess.CompletedProcess:
    """``junction --url wss://… [--ca-file …] [--client-cert … --client-key …] <args>``,
    joining realm secure as joe (a config file names it as the realm to join). ``client`` is
    a pair of PEM paths (certificate, key)."""
    cli_config = tmp_path / "cli.toml"
    cli_config.write_text(f'admin_realm = "{SECURE}"\n')
    ca = ["--ca-file", str(ca_file)] if ca_file is not None else []
    if client is not None:
        ca += ["--client-cert", str(client[0]), "--client-key", str(client[1])]
    env = {**os.environ, "JUNCTION_ADMIN_PASSWORD": JOE_SECRET}
    # No system trust store may vouch for the test certificate.
    env.pop("SSL_CERT_FILE", None)
    env.pop("SSL_CERT_DIR", None)
    return subprocess.run(
        [str(tls_router.process.binary), "--url", tls_router.wss_url, "--admin-authid", "joe",
         "--config", str(cli_config), *ca, *args],
        capture_output=True, text=True, timeout=STARTUP_TIMEOUT, env=env)


def test_the_cli_manages_sources_over_wss_with_a_private_ca(tls_router, tmp_path):
    added = cli_over_tls(tls_router, tmp_path, "source", "add", SECURE, "--user", "all",
                         "--cidr", "127.0.0.1/8", "--authmethod", "ticket",
                         ca_file=tls_router.cert_path)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout) == {
        "usernames": ["all"], "cidr": "127.0.0.0/8", "authmethods": ["ticket"]}
    listed = cli_over_tls(tls_router, tmp_path, "source", "list", SECURE,
                          ca_file=tls_router.cert_path)
    assert listed.returncode == 0, listed.stderr
    assert [s["cidr"] for s in json.loads(listed.stdout)] == ["127.0.0.0/8"]
    deleted = cli_over_tls(tls_router, tmp_path, "source", "delete", SECURE, "--user", "all",
                           "--cidr", "127.0.0.0/8", ca_file=tls_router.cert_path)
    assert deleted.returncode == 0, deleted.stderr
    # What joe may not call is refused by the router, over the same TLS connection.
    denied = cli_over_tls(tls_router, tmp_path, "user", "list", SECURE,
                          ca_file=tls_router.cert_path)
    assert denied.returncode == 1 and "wamp.error.not_authorized" in denied.stderr, denied.stderr


def test_the_cli_over_wss_refuses_a_certificate_it_does_not_trust(tls_router, tmp_path):
    # Neither the system's trust store nor another CA vouches for the router's certificate.
    untrusted = cli_over_tls(tls_router, tmp_path, "source", "list", SECURE)
    assert untrusted.returncode == 1, (untrusted.stdout, untrusted.stderr)
    assert "cannot connect" in untrusted.stderr and "certificate" in untrusted.stderr.lower(), (
        untrusted.stderr)
    other = tmp_path / "other.pem"
    other.write_bytes(Certificate("someone-else").cert_pem)
    wrong_ca = cli_over_tls(tls_router, tmp_path, "source", "list", SECURE, ca_file=other)
    assert wrong_ca.returncode == 1 and "certificate" in wrong_ca.stderr.lower(), wrong_ca.stderr


# ------------------------------------------------------------------------------------------------
# Client certificates (tls.client_ca)
# ------------------------------------------------------------------------------------------------


class ClientAuthority:
    """A CA for client certificates, one client certificate it signed, and one from a CA the
    router does not know, written as PEM files."""

    def __init__(self, tmp_path):
        self.ca = Certificate("junction-test-clients-ca", ca=True)
        self.ca_path = tmp_path / "clients-ca.pem"
        self.ca_path.write_bytes(self.ca.cert_pem)
        self.client = Certificate("joe's laptop", issuer=self.ca)
        self.client_paths = (tmp_path / "client.pem", tmp_path / "client-key.pem")
        self.client.write(*self.client_paths)
        stranger_ca = Certificate("someone-else's-ca", ca=True)
        self.stranger = Certificate("stranger", issuer=stranger_ca)


@pytest.fixture
def clients_ca(tmp_path):
    return ClientAuthority(tmp_path)


@pytest.fixture
def mtls_router(request, tmp_path, clients_ca):
    yield from started_tls_router(request, tmp_path, client_ca=clients_ca.ca_path)


def presenting(router: TlsRouter, certificate: Certificate | None, tmp_path) -> ssl.SSLContext:
    """A client context that trusts the router and presents ``certificate`` (or nothing)."""
    context = trusting(router.certificate)
    if certificate is not None:
        cert_path, key_path = tmp_path / "presented.pem", tmp_path / "presented-key.pem"
        certificate.write(cert_path, key_path)
        context.load_cert_chain(cert_path, key_path)
    return context


@pytest.mark.parametrize("transport", ["websocket", "rawsocket"])
async def test_with_client_ca_only_clients_with_a_certificate_it_signed_get_in(
        mtls_router, clients_ca, tmp_path, transport):
    """``tls.client_ca``: Autobahn|Python presenting a certificate the CA signed joins (and
    still authenticates with WAMP); without a certificate, or with one another CA signed, the
    TLS handshake fails and no session starts."""
    pool = TlsClients(mtls_router)
    try:
        session = await pool.join("ticket", transport,
                                  context=presenting(mtls_router, clients_ca.client, tmp_path))
        assert (await own_transport(session))["tls"] is True
        for certificate in (None, clients_ca.stranger):
            with pytest.raises((ssl.SSLError, ConnectionError, JoinFailed)):
                await pool.join("ticket", transport,
                                context=presenting(mtls_router, certificate, tmp_path))
    finally:
        await pool.close()
    assert mtls_router.process.is_running()


def test_the_cli_presents_a_client_certificate_over_wss(mtls_router, clients_ca, tmp_path):
    listed = cli_over_tls(mtls_router, tmp_path, "source", "list", SECURE,
                          ca_file=mtls_router.cert_path, client=clients_ca.client_paths)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == []
    without = cli_over_tls(mtls_router, tmp_path, "source", "list", SECURE,
                           ca_file=mtls_router.cert_path)
    assert without.returncode == 1 and "cannot connect" in without.stderr, without.stderr
