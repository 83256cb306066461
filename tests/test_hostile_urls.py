"""Hostile URLs: the address that is checked is the address that is fetched from, on every hop.

The private-address check and the fetcher once parsed URLs differently: `http://127.0.0.1:PORT\\@1.1.1.1/` was
judged public and fetched from loopback, directly and at a redirect hop, and the errors told open ports from
closed ones. Every server here listens on loopback and records each request it gets, so "never fetched" is
observed. DNS is the boundary: `dns` makes made-up names resolve as a test says, one answer per lookup, the way
a rebinding DNS server answers differently each time.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import certifi
import pytest

from core.contract import ErrorCode
from core.settings import Settings
from core.store import open_store
from tests.conftest import EXAMPLES
from tests.s3server import free_port
from worker import inputs
from worker.pipeline import run_job

SPEECH = str(EXAMPLES / "media" / "speech_1.wav")
PORTRAIT = (EXAMPLES / "media" / "portrait.jpg").read_bytes()


class Server:
    """An HTTP(S) server on a loopback address: /face.jpg is the portrait, /jump redirects to `redirect_to`;
    every request is recorded as (path, Host header)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[tuple[str, str]] = []
        self.redirect_to = ""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests.append((self.path, self.headers.get("Host", "")))
                if self.path == "/jump":
                    self.send_response(302)
                    # As raw UTF-8, the way a hostile server would send a non-ASCII Location.
                    self._headers_buffer.append(b"Location: " + owner.redirect_to.encode() + b"\r\n")
                    body = b""
                elif self.path.endswith("/face.jpg"):
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    body = PORTRAIT
                else:
                    self.send_response(404)
                    body = b""
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Two servers: [0] the one an attacker aims at, [1] a second one on another loopback address."""
    started = [Server("127.0.0.1"), Server("127.0.0.2")]
    yield started
    for server in started:
        server.close()


class Dns:
    """Names resolve to the answers given, in turn (the last one repeats); other names resolve for real."""

    def __init__(self) -> None:
        self.answers: dict[str, list[list[str]]] = {}
        self.lookups: dict[str, int] = {}
        self.real = socket.getaddrinfo

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        turn = self.lookups.get(name, 0)
        self.lookups[name] = turn + 1
        answer = self.answers[name][min(turn, len(self.answers[name]) - 1)]
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, int(port or 0)))
            for a in answer
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Dns:
    fake = Dns()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


def job(cond_video: str) -> dict[str, Any]:
    return {"prompt": "p", "cond_video": cond_video, "cond_audio": {"person1": SPEECH}, "mode": "clip", "frame_num": 25}


def outcome(settings: Settings, url: str) -> dict[str, Any]:
    output = run_job(job(url), "url", settings=settings, sink=lambda _: None)
    assert list(settings.work_root.iterdir()) == []
    return output


def error_of(settings: Settings, url: str) -> dict[str, Any]:
    output = outcome(settings, url)
    assert output["status"] == "error", output
    return output["error"]


# {port} is the target server's port; 1.1.1.1 is never connected to either.
TRICKS = [
    "http://127.0.0.1:{port}\\@1.1.1.1/../media/face.jpg",
    "http://1.1.1.1\\@127.0.0.1:{port}/face.jpg",
    "http://127.0.0.1:{port}\\\\@1.1.1.1/face.jpg",
    "http://1.1.1.1@127.0.0.1:{port}/face.jpg",
    "http://user:secret@127.0.0.1:{port}/face.jpg",
    "http://127.0.0.1:{port}%5C@1.1.1.1/face.jpg",
    "http://127.0.0.1:{port}\t@1.1.1.1/face.jpg",
    "http://127.0.0.1:{port} @1.1.1.1/face.jpg",
    "http://127.0.0.1:{port}#@1.1.1.1/face.jpg",
    "http://127.0.0.1:{port}?@1.1.1.1/face.jpg",
    "http://127.0.0.1%2e:{port}/face.jpg",
    "http://\uff11\uff12\uff17.0.0.1:{port}/face.jpg",
    "http://127.0.0.1\u3002:{port}/face.jpg",
    "HTTP://127.0.0.1:{port}/face.jpg",
    "http://localhost:{port}/face.jpg",
    "http://0.0.0.0:{port}/face.jpg",
    "http://127.1:{port}/face.jpg",
    "http://2130706433:{port}/face.jpg",
    "http://0x7f.0.0.1:{port}/face.jpg",
    "http://0177.0.0.1:{port}/face.jpg",
    "http://[::ffff:127.0.0.1]:{port}/face.jpg",
    "http://[::127.0.0.1]:{port}/face.jpg",
    "http://[::1]:{port}/face.jpg",
    "http://[::]:{port}/face.jpg",
]


@pytest.mark.parametrize("trick", TRICKS, ids=repr)
def test_a_url_that_reaches_loopback_by_any_spelling_is_refused_and_never_fetched(
    settings: Settings, servers: list[Server], trick: str
) -> None:
    error = error_of(settings, trick.format(port=servers[0].port))

    assert error["code"] == ErrorCode.INPUT_VALIDATION and error["message"].startswith("cond_video: the URL")
    assert servers[0].requests == []


@pytest.mark.parametrize("trick", TRICKS, ids=repr)
def test_the_same_urls_are_refused_at_a_redirect_hop(
    settings: Settings, servers: list[Server], dns: Dns, trick: str
) -> None:
    """The first hop is a host the operator trusts (here a name for the second server); where it redirects to
    is checked like any URL."""
    first, target = servers[1], servers[0]
    dns.answers["media.example.com"] = [["127.0.0.2"]]
    first.redirect_to = trick.format(port=target.port)

    error = error_of(
        settings.with_(extra_trusted_hosts=(f"media.example.com:{first.port}",)),
        f"http://media.example.com:{first.port}/jump",
    )

    assert error["code"] == ErrorCode.INPUT_VALIDATION and error["message"].startswith("cond_video: the URL")
    assert [path for path, _ in first.requests] == ["/jump"] and target.requests == []


def test_errors_for_private_targets_are_the_same_whether_a_port_is_open_or_closed(
    settings: Settings, servers: list[Server], dns: Dns
) -> None:
    """No port scanning through error messages: a private target is refused before anything connects to it."""
    open_port, closed_port = servers[0].port, free_port()
    dns.answers["media.example.com"] = [["127.0.0.2"]]
    trusted = settings.with_(extra_trusted_hosts=(f"media.example.com:{servers[1].port}",))

    def errors(port: int) -> list[dict[str, Any]]:
        found = []
        for form in (
            "http://127.0.0.1:{port}/face.jpg",
            "http://127.0.0.1:{port}\\@1.1.1.1/face.jpg",
            "http://10.0.0.1:{port}/face.jpg",
        ):
            found.append(error_of(settings, form.format(port=port)))
            servers[1].redirect_to = form.format(port=port)
            found.append(error_of(trusted, f"http://media.example.com:{servers[1].port}/jump"))
        return found

    assert errors(open_port) == errors(closed_port)
    assert servers[0].requests == []


IPV6_PRIVATE = [
    "::127.0.0.1",
    "::10.0.0.1",
    "::ffff:127.0.0.1",
    "::ffff:0:127.0.0.1",
    "::ffff:0:169.254.169.254",
    "64:ff9b::127.0.0.1",
    "64:ff9b::10.0.0.1",
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::a00:1",
    "2002:7f00:1::",
    "2002:a9fe:a9fe::1",
    "2002:c0a8:101::1",
    "fec0::1",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "::1",
    "::",
    "ff02::1",
]


@pytest.mark.parametrize("address", IPV6_PRIVATE)
def test_ipv6_forms_of_private_addresses_are_refused_as_literals_and_through_dns(
    settings: Settings, dns: Dns, address: str
) -> None:
    dns.answers["v6.example.com"] = [[address]]
    literal = error_of(settings, f"http://[{address}]:8080/face.jpg")
    named = error_of(settings, "http://v6.example.com:8080/face.jpg")

    for error in (literal, named):
        assert error["code"] == ErrorCode.INPUT_VALIDATION and "private or internal" in error["message"]


def test_ipv6_forms_that_wrap_a_public_address_are_public() -> None:
    for address in ("64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:8.8.8.8", "2606:4700::1111"):
        assert inputs._is_public(ipaddress.ip_address(address)), address


def test_a_name_with_one_private_answer_among_public_ones_is_refused(
    settings: Settings, servers: list[Server], dns: Dns
) -> None:
    dns.answers["mixed.example.com"] = [["93.184.216.34", "127.0.0.1"]]
    error = error_of(settings, f"http://mixed.example.com:{servers[0].port}/face.jpg")
    assert error["code"] == ErrorCode.INPUT_VALIDATION and servers[0].requests == []


def test_a_rebinding_name_is_checked_on_its_first_answer(settings: Settings, servers: list[Server], dns: Dns) -> None:
    """The attacker's DNS answers private first and public later, or public first and private later: either way
    the name is looked up once per hop, and that one answer is what is checked and what is connected to."""
    dns.answers["rebind.example.com"] = [["127.0.0.1"], ["93.184.216.34"]]
    error = error_of(settings, f"http://rebind.example.com:{servers[0].port}/face.jpg")
    assert error["code"] == ErrorCode.INPUT_VALIDATION and servers[0].requests == []
    assert dns.lookups["rebind.example.com"] == 1


def test_a_name_that_rebinds_to_loopback_after_the_check_is_fetched_from_the_checked_address(
    settings: Settings, servers: list[Server], dns: Dns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the first answer passes the check, every later one points at loopback. 127.0.0.2 stands in
    for the attacker's public server (declared public for this test, so nothing outside is contacted); the
    server on 127.0.0.1 listens on the same port. Only the checked address may see a request."""
    checked = Server("127.0.0.2", servers[0].port)
    real = inputs._is_public
    monkeypatch.setattr(inputs, "_is_public", lambda address: str(address) == "127.0.0.2" or real(address))
    dns.answers["rebind.example.com"] = [["127.0.0.2"], ["127.0.0.1"]]
    try:
        output = outcome(settings, f"http://rebind.example.com:{checked.port}/face.jpg")
    finally:
        checked.close()

    assert output["status"] == "success", output
    assert checked.requests == [("/face.jpg", f"rebind.example.com:{checked.port}")]
    assert servers[0].requests == [] and dns.lookups["rebind.example.com"] == 1


@pytest.mark.parametrize("how", ["trusted host", "STUDIO_ALLOW_PRIVATE_URLS"])
def test_the_connection_goes_to_the_address_that_was_resolved_not_to_a_second_lookup(
    settings: Settings, servers: list[Server], dns: Dns, how: str
) -> None:
    """Both servers listen on the same port number on two loopback addresses; the name's first answer is the
    first server, every later answer the second. Only the first may see a request."""
    first = servers[0]
    second = Server("127.0.0.2", first.port)
    try:
        dns.answers["media.example.com"] = [["127.0.0.1"], ["127.0.0.2"]]
        allowed = (
            settings.with_(extra_trusted_hosts=(f"media.example.com:{first.port}",))
            if how == "trusted host"
            else Settings.from_env(
                {
                    "STUDIO_DATA_DIR": str(settings.data_dir),
                    "STUDIO_INPUT_ROOTS": str(EXAMPLES),
                    "STUDIO_ALLOW_PRIVATE_URLS": "1",
                }
            )
        )
        output = outcome(allowed, f"http://media.example.com:{first.port}/face.jpg")

        assert output["status"] == "success", output
        assert first.requests == [("/face.jpg", f"media.example.com:{first.port}")]
        assert second.requests == [] and dns.lookups["media.example.com"] == 1
    finally:
        second.close()


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (it is its own CA) and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.mark.parametrize("certified", ["media.example.com", "other.example.com"])
def test_https_to_the_pinned_address_sends_the_host_name_and_checks_the_certificate_for_it(
    settings: Settings, dns: Dns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, certified: str
) -> None:
    cert, key = _certificate(tmp_path, certified)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    tls.sni_callback = lambda _socket, name, _context: names.append(name)  # type: ignore[assignment]
    server = Server("127.0.0.1", tls=tls)
    monkeypatch.setattr(certifi, "where", lambda: str(cert))  # the worker trusts this one CA
    dns.answers["media.example.com"] = [["127.0.0.1"]]
    try:
        output = outcome(
            settings.with_(extra_trusted_hosts=(f"media.example.com:{server.port}",)),
            f"https://media.example.com:{server.port}/face.jpg",
        )
    finally:
        server.close()

    assert names and set(names) == {"media.example.com"}
    if certified == "media.example.com":
        assert output["status"] == "success", output
        assert server.requests == [("/face.jpg", f"media.example.com:{server.port}")]
    else:
        assert output["error"]["code"] == ErrorCode.DOWNLOAD_FAILED and "SSL" in output["error"]["message"]
        assert server.requests == []


def test_the_s3_endpoint_is_trusted_and_its_presigned_urls_are_fetched_with_the_signed_host(
    s3_settings: Settings,
) -> None:
    """A self-hosted S3 server on loopback is private but configured by the operator; its signature covers the
    Host header, so this also shows the pinned connection sends the URL's own host and port."""
    store = open_store(s3_settings)
    store.ensure_bucket()  # type: ignore[attr-defined]
    store.put_bytes("uploads/abc/face.jpg", PORTRAIT)

    output = outcome(s3_settings, store.url("uploads/abc/face.jpg"))

    assert output["status"] == "success", output
