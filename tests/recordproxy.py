"""A recording reverse proxy for the conformance tests (loopback only).

Listens on two loopback ports in front of the moto server: plain http, and https
with a certificate from a throw-away CA made here (``make_ca``). Every request is
forwarded and recorded as a ``Seen``: scheme, whether it came as a forward-proxy
request (absolute URL), Host, path, the signing region, service and access key of
its Authorization header, its session token, payload hash form and whether the
fast path sent it. A TLS handshake the client refused (it did not trust the
certificate) is counted in ``refused``. ``mark()`` and ``since()`` slice the log by
who ran in between.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import re
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

_AUTH = re.compile(r"Credential=([^/]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_HOP = {"connection", "proxy-connection", "keep-alive", "expect", "transfer-encoding"}


@dataclass(frozen=True)
class Seen:
    scheme: str
    proxied: bool
    method: str
    host: str
    path: str
    access_key: str
    region: str
    service: str
    token: str
    payload: str  # UNSIGNED-PAYLOAD, sha256 (a hex digest) or a streaming form
    fast: bool

    def shape(self, bucket: str) -> tuple[str, ...]:
        """What must match boto3: where, how addressed, signed for what, as whom, and
        for a PUT how the payload is signed."""
        if self.host.startswith(bucket + "."):
            addressing = "virtual"
        elif self.path == f"/{bucket}" or self.path.startswith(f"/{bucket}/"):
            addressing = "path"
        else:
            addressing = "-"  # STS, or a request about no bucket
        return (
            self.service,
            self.scheme,
            "proxied" if self.proxied else "direct",
            self.host,
            addressing,
            self.region,
            self.access_key,
            self.token,
            self.payload if self.method == "PUT" else "",
        )


def make_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA certificate, and a server certificate and key it signed for 127.0.0.1 and
    localhost: (ca.pem, server.pem, server-key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s3stow test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    server = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = self._chunked()  # forwarded with a Content-Length instead
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        target = self.path
        proxied = target.startswith(("http://", "https://"))
        if proxied:
            parts = urlsplit(target)
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        self.server.owner.record(self, target, proxied)
        upstream = http.client.HTTPConnection(*self.server.owner.upstream, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            headers["Content-Length"] = str(len(body))
            upstream.request(self.command, target, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in _HOP and name.lower() != "content-length":
                self.send_header(name, value)
        length_out = answer.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length_out or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return bytes(body)
            body += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: RecordingProxy, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.owner = owner
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is not None:
            try:
                request = self.tls.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError):
                self.owner.refused += 1  # the client did not trust the certificate
                return
        self.RequestHandlerClass(request, client_address, self)


class RecordingProxy:
    """http and https listeners in front of ``upstream`` (host, port), recording."""

    def __init__(self, upstream: tuple[str, int], *, cert: Path, key: Path) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.refused = 0
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._servers = [_Server(self, None), _Server(self, context)]
        self._threads = [
            threading.Thread(target=s.serve_forever, daemon=True) for s in self._servers
        ]

    @property
    def http_port(self) -> int:
        return int(self._servers[0].server_address[1])

    @property
    def https_port(self) -> int:
        return int(self._servers[1].server_address[1])

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    def record(self, handler: _Handler, target: str, proxied: bool) -> None:
        headers = handler.headers
        match = _AUTH.search(headers.get("Authorization", ""))
        payload = headers.get("X-Amz-Content-SHA256", "")
        self.seen.append(
            Seen(
                scheme="https" if handler.server.tls is not None else "http",
                proxied=proxied,
                method=handler.command,
                host=headers.get("Host", ""),
                path=target.split("?", 1)[0],
                access_key=match.group(1) if match else "",
                region=match.group(2) if match else "",
                service=match.group(3) if match else "",
                token=headers.get("X-Amz-Security-Token", ""),
                payload="sha256" if re.fullmatch("[0-9a-f]{64}", payload) else payload,
                fast="fastpath" in headers.get("User-Agent", ""),
            )
        )

    def mark(self) -> tuple[int, int]:
        return len(self.seen), self.refused

    def since(self, mark: tuple[int, int]) -> tuple[list[Seen], int]:
        return self.seen[mark[0] :], self.refused - mark[1]
