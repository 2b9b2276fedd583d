"""TLS sockets: handshake, echo, big transfers, pending records, SendFile fallback, errors."""
from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cogen.common import coroutine, events, sockets
from cogen.testing import loopback_listener, reactor_names, run_in_scheduler

pytestmark = pytest.mark.timeout(60)


def _cert_with_cryptography(directory: Path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def _cert_with_openssl(directory: Path) -> tuple[str, str]:
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key_path), "-out", str(cert_path), "-days", "7", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30)
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("tls")
    try:
        return _cert_with_cryptography(directory)
    except ImportError:
        pass
    if shutil.which("openssl"):
        return _cert_with_openssl(directory)
    pytest.skip("neither the cryptography package nor the openssl command is available")


@pytest.fixture
def contexts(cert: tuple[str, str]) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*cert)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(cert[0])
    return server, client


@pytest.fixture(params=reactor_names())
def reactor(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def tls_session(reactor: str, contexts: Any, server_fn: Any, client_fn: Any,
                handshake: bool = True) -> Any:
    """Run ``server_fn(conn)`` on an accepted TLS connection and ``client_fn(cli)`` on the client."""
    server_ctx, client_ctx = contexts
    box: dict[str, Any] = {}

    @coroutine
    def server(srv):
        conn, _ = yield sockets.Accept(srv, timeout=10)
        try:
            assert conn.is_tls
            box["server"] = yield server_fn(conn)
        finally:
            conn.close()

    @coroutine
    def main():
        srv, addr = loopback_listener(ssl_context=server_ctx)
        cli = sockets.Socket()
        try:
            s = yield events.AddCoro(server, (srv,))
            yield sockets.Connect(cli, addr, timeout=10)
            cli.wrap(client_ctx, server_hostname="localhost")
            if handshake:
                assert (yield sockets.Handshake(cli, timeout=10)) is cli
                assert cli.getpeercert()["subject"][0][0] == ("commonName", "localhost")
            box["client"] = yield client_fn(cli)
            yield events.Join(s, timeout=10)
        finally:
            cli.close()
            srv.close()
        return box

    return run_in_scheduler(main, reactor=reactor, timeout=50)


@coroutine
def echo_lines(conn):
    count = 0
    while True:
        try:
            line = yield sockets.ReadLine(conn, 1 << 20, timeout=10)
        except sockets.ConnectionClosed:
            return count
        count += 1
        yield sockets.WriteAll(conn, line, timeout=10)


@pytest.mark.parametrize("explicit_handshake", [True, False])
def test_tls_echo(reactor: str, contexts: Any, explicit_handshake: bool) -> None:
    lines = [b"hello over TLS\n", b"x" * 100_000 + b"\n", b"bye\n"]

    @coroutine
    def client(cli):
        echoes = []
        for line in lines:
            yield sockets.WriteAll(cli, line, timeout=10)
            echoes.append((yield sockets.ReadLine(cli, 1 << 20, timeout=10)))
        cli.close()
        return echoes

    box = tls_session(reactor, contexts, echo_lines, client, handshake=explicit_handshake)
    assert box["client"] == lines
    assert box["server"] == len(lines)


def test_tls_big_transfer_both_ways(reactor: str, contexts: Any) -> None:
    data = os.urandom(4 * 1024 * 1024)

    @coroutine
    def server(conn):
        got = yield sockets.ReadAll(conn, len(data), timeout=20)
        yield sockets.WriteAll(conn, got, timeout=20)
        return hashlib.sha256(got).hexdigest()

    @coroutine
    def client(cli):
        sender = yield events.AddCoro(sockets_write_all, (cli, data))
        back = yield sockets.ReadAll(cli, len(data), timeout=20)
        yield events.Join(sender, timeout=20)
        return hashlib.sha256(back).hexdigest()

    box = tls_session(reactor, contexts, server, client)
    assert box["server"] == box["client"] == hashlib.sha256(data).hexdigest()


@coroutine
def sockets_write_all(sock, data):
    yield sockets.WriteAll(sock, data, timeout=20)


def test_tls_small_reads_drain_a_decrypted_record_without_waiting(reactor: str, contexts: Any) -> None:
    record = bytes(range(256)) * 60  # 15 KiB: one TLS record

    @coroutine
    def server(conn):
        yield sockets.WriteAll(conn, record, timeout=10)
        yield sockets.ReadLine(conn, 10, timeout=10)  # wait for the client's ack

    @coroutine
    def client(cli):
        parts = []
        got = 0
        while got < len(record):
            # the rest of the record is in OpenSSL (pending()), not in the kernel:
            # a read that parked on the descriptor here would time out
            part = yield sockets.Read(cli, 100, timeout=5)
            parts.append(part)
            got += len(part)
        yield sockets.WriteAll(cli, b"ok\n", timeout=10)
        return b"".join(parts)

    box = tls_session(reactor, contexts, server, client)
    assert box["client"] == record


def test_tls_sendfile_uses_the_fallback(reactor: str, contexts: Any, tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    path = tmp_path / "payload.bin"
    path.write_bytes(data)

    @coroutine
    def server(conn):
        with open(path, "rb") as f:
            return (yield sockets.SendFile(f, conn, offset=5, timeout=20))

    @coroutine
    def client(cli):
        got = yield sockets.ReadAll(cli, len(data) - 5, timeout=20)
        return hashlib.sha256(got).hexdigest()

    box = tls_session(reactor, contexts, server, client)
    assert box["server"] == len(data) - 5
    assert box["client"] == hashlib.sha256(data[5:]).hexdigest()


def test_tls_certificate_failure_raises_tls_error(reactor: str, contexts: Any) -> None:
    server_ctx, _ = contexts
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts nothing
    outcome: dict[str, Any] = {}

    @coroutine
    def server(srv):
        conn, _ = yield sockets.Accept(srv, timeout=10)
        try:
            yield sockets.Read(conn, 100, timeout=10)
        except sockets.SocketError as exc:
            outcome["server"] = exc
        finally:
            conn.close()

    @coroutine
    def main():
        srv, addr = loopback_listener(ssl_context=server_ctx)
        cli = sockets.Socket()
        try:
            s = yield events.AddCoro(server, (srv,))
            yield sockets.Connect(cli, addr, timeout=10)
            cli.wrap(untrusting, server_hostname="localhost")
            try:
                yield cli.handshake(timeout=10)
            except sockets.TLSError as exc:
                outcome["client"] = exc
            cli.close()
            yield events.Join(s, timeout=10)
        finally:
            srv.close()

    run_in_scheduler(main, reactor=reactor, timeout=30)
    assert isinstance(outcome["client"], sockets.TLSError)
    assert isinstance(outcome["client"].__cause__, ssl.SSLCertVerificationError)
    assert isinstance(outcome["server"], (sockets.TLSError, sockets.ConnectionClosed))


def test_wrap_twice_and_handshake_on_plain_socket_are_errors(contexts: Any) -> None:
    _, client_ctx = contexts
    with sockets.Socket() as s:
        s.wrap(client_ctx, server_hostname="localhost")
        assert s.is_tls
        with pytest.raises(sockets.SocketError, match="already"):
            s.wrap(client_ctx)
    with sockets.Socket() as plain:
        op = sockets.Handshake(plain)
        with pytest.raises(sockets.SocketError, match="not a TLS socket"):
            op.process(None, None)  # type: ignore[arg-type]


def test_wrap_socket_function_accepts_a_stdlib_socket(contexts: Any) -> None:
    import socket
    _, client_ctx = contexts
    s = sockets.wrap_socket(socket.socket(), client_ctx, server_hostname="localhost")
    with s:
        assert isinstance(s, sockets.Socket) and s.is_tls and s.pending() == 0


def test_tls_client_wrapped_before_connecting(reactor: str, contexts: Any) -> None:
    server_ctx, client_ctx = contexts

    @coroutine
    def main():
        srv, addr = loopback_listener(ssl_context=server_ctx)
        cli = sockets.wrap_socket(sockets.Socket(), client_ctx, server_hostname="localhost")
        try:
            s = yield events.AddCoro(_accept_and_echo, (srv,))
            yield sockets.Connect(cli, addr, timeout=10)
            yield sockets.WriteAll(cli, b"wrapped first\n", timeout=10)
            line = yield sockets.ReadLine(cli, 100, timeout=10)
            cli.close()
            yield events.Join(s, timeout=10)
            return line
        finally:
            cli.close()
            srv.close()

    assert run_in_scheduler(main, reactor=reactor, timeout=30) == b"wrapped first\n"


@coroutine
def _accept_and_echo(srv):
    conn, _ = yield sockets.Accept(srv, timeout=10)
    try:
        return (yield echo_lines(conn))
    finally:
        conn.close()
