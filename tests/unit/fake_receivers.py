"""Webhook receivers on 127.0.0.1 that answer at a chosen pace (raw sockets: every byte is ours)."""

from __future__ import annotations

import datetime
import select
import socket
import ssl
import threading
import time
from pathlib import Path

DRIP_EVERY = 1.0
ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class FakeSlowReceiver:
    """A TCP server on 127.0.0.1 answering each request at a chosen pace.

    ``mode`` is ``"drip-status"`` (the status line and headers one byte every ``DRIP_EVERY``),
    ``"drip-body"`` (headers at once, then a long body one byte at a time), ``"fast"``, or
    ``"silent"`` (accepts the connection, then says nothing, not even a TLS handshake). With
    ``tls`` (a server context) it speaks HTTPS. Records when each request had fully arrived and
    when the client hung up.
    """

    def __init__(self, mode: str, tls: ssl.SSLContext | None = None) -> None:
        self.mode = mode
        self.tls = tls
        self.arrived: list[float] = []
        self.hung_up: list[float] = []
        self.bodies: list[bytes] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(16)
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/hooks"
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")),
            0,
        )
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return body

    def _serve(self, conn: socket.socket) -> None:
        if self.mode == "silent":
            with conn:
                # Take whatever comes (a ClientHello) and answer nothing, until the client hangs up.
                until = time.monotonic() + 60
                while time.monotonic() < until and not self._stopping.is_set():
                    if self._wait_for_hang_up(conn, 0.5):
                        break
            return
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (OSError, ssl.SSLError):
                conn.close()
                return
        with conn:
            body = self._read_request(conn)
            with self._lock:
                self.arrived.append(time.monotonic())
                self.bodies.append(body)
            if self.mode == "fast":
                conn.sendall(ANSWER)
                return
            if self.mode == "drip-status":
                pending = ANSWER
            else:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
                pending = b"x" * 1000
            for byte in pending:
                # Wait a drip's time, unless the client hangs up first.
                if self._wait_for_hang_up(conn, DRIP_EVERY) or self._stopping.is_set():
                    break
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    break

    def _wait_for_hang_up(self, conn: socket.socket, seconds: float) -> bool:
        """Wait up to ``seconds``; True (and noted) when the client closed the connection."""
        readable, _, _ = select.select([conn], [], [], seconds)
        if not readable:
            return False
        try:
            closed = not conn.recv(1)
        except OSError:
            closed = True
        if closed:
            with self._lock:
                self.hung_up.append(time.monotonic())
        return closed

    def close(self) -> None:
        self._stopping.set()
        self.server.close()


class FakeReceivers:
    """The receivers a test makes, closed after it (see the ``receivers`` fixtures)."""

    def __init__(self) -> None:
        self.made: list[FakeSlowReceiver] = []

    def __call__(self, mode: str, tls: ssl.SSLContext | None = None) -> FakeSlowReceiver:
        made = FakeSlowReceiver(mode, tls)
        self.made.append(made)
        return made

    def close(self) -> None:
        for made in self.made:
            made.close()


def certificate_authority(folder: Path, host: str) -> tuple[Path, ssl.SSLContext]:
    """A CA (its certificate file, for a client to trust) and a server context for ``host`` signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject: str, issuer: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey, ca: bool):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        else:
            builder = (
                builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False)
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("test CA", "test CA", ca_key, ca_key, ca=True)
    leaf_cert = build(host, "test CA", leaf_key, ca_key, ca=False)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf_cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert_file, key_file)
    return ca_file, server
