"""Hostile inputs: internal addresses reached directly, through redirects or DNS; lying headers; empty media."""

from __future__ import annotations

import base64
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from core.contract import ErrorCode
from core.settings import Settings
from tests.conftest import EXAMPLES
from worker.pipeline import run_job

SPEECH = str(EXAMPLES / "media" / "speech_1.wav")
PORTRAIT = (EXAMPLES / "media" / "portrait.jpg").read_bytes()


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, dict[str, str], bytes]]] = {}

    def do_GET(self) -> None:
        status, headers, body = self.routes.get(self.path, (404, {}, b""))
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture
def media_server() -> Iterator[str]:
    """A small HTTP server on loopback serving `_Handler.routes`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def job(cond_video: str, person1: str = SPEECH) -> dict[str, Any]:
    return {
        "prompt": "p",
        "cond_video": cond_video,
        "cond_audio": {"person1": person1},
        "mode": "clip",
        "frame_num": 25,
    }


def error_of(settings: Settings, job_input: dict[str, Any]) -> dict[str, Any]:
    output = run_job(job_input, "hostile", settings=settings, sink=lambda _: None)
    assert output["status"] == "error", output
    assert not settings.work_root.exists() or list(settings.work_root.iterdir()) == []
    return output["error"]


def test_a_trusted_host_serves_media_but_its_redirect_to_the_metadata_address_is_refused(
    settings: Settings, media_server: str
) -> None:
    _Handler.routes = {
        "/face.jpg": (200, {"Content-Type": "image/jpeg"}, PORTRAIT),
        "/jump": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
    }
    trusted = settings.with_(extra_trusted_hosts=(media_server.removeprefix("http://"),))

    fine = run_job(job(f"{media_server}/face.jpg"), "ok", settings=trusted, sink=lambda _: None)
    refused = error_of(trusted, job(f"{media_server}/jump"))

    assert fine["status"] == "success", fine
    assert refused["code"] == ErrorCode.INPUT_VALIDATION and "169.254.169.254" in refused["message"]


def test_a_dns_name_that_resolves_to_a_private_address_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = socket.getaddrinfo

    def resolver(host: str, *args: Any, **kwargs: Any) -> Any:
        # DNS is the boundary: this name resolves into the private range, as a rebinding attacker's would.
        if host == "innocent.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 80))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    error = error_of(settings, job("http://innocent.example.com/face.jpg"))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "private or internal" in error["message"]


def test_a_server_lying_about_size_is_cut_off_at_the_byte_cap(settings: Settings, media_server: str) -> None:
    _Handler.routes = {"/big.jpg": (200, {"Content-Type": "image/jpeg"}, PORTRAIT)}
    capped = settings.with_(extra_trusted_hosts=(media_server.removeprefix("http://"),), max_download_bytes=10_000)

    error = error_of(capped, job(f"{media_server}/big.jpg"))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "limit" in error["message"]


def test_a_failing_download_is_retryable_and_names_the_status(settings: Settings, media_server: str) -> None:
    _Handler.routes = {"/busy.jpg": (503, {}, b"busy")}
    error = error_of(
        settings.with_(extra_trusted_hosts=(media_server.removeprefix("http://"),)), job(f"{media_server}/busy.jpg")
    )
    assert error["code"] == ErrorCode.DOWNLOAD_FAILED and error["retryable"] is True and "503" in error["message"]


def test_an_audio_file_claiming_ten_hours_is_refused_without_decoding(settings: Settings) -> None:
    rate = 16_000
    ten_hours = rate * 2 * 3600 * 10
    header = b"RIFF" + struct.pack("<I", 36 + ten_hours) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16) + b"data" + struct.pack("<I", ten_hours)
    liar = "data:audio/wav;base64," + base64.b64encode(header + b"\0" * 32000).decode()

    error = error_of(settings, job(str(EXAMPLES / "media" / "portrait.jpg"), liar))
    assert error["code"] == ErrorCode.INPUT_VALIDATION
    assert "cond_audio.person1" in error["message"] and "limit" in error["message"]


def test_a_video_with_no_frames_is_refused(settings: Settings, tmp_path: Path) -> None:
    audio_only = tmp_path / "audio_only.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-i", SPEECH, "-c:a", "aac", str(audio_only)], check=True)
    data_url = "data:video/mp4;base64," + base64.b64encode(audio_only.read_bytes()).decode()

    error = error_of(settings, job(data_url))
    assert error["code"] == ErrorCode.INPUT_VALIDATION and "no picture" in error["message"]


def test_a_trusted_host_is_trusted_on_its_own_port_only(settings: Settings, media_server: str) -> None:
    """Trusting a LAN media server must not open the same machine's other services to jobs."""
    _Handler.routes = {"/face.jpg": (200, {"Content-Type": "image/jpeg"}, PORTRAIT)}
    port = int(media_server.rsplit(":", 1)[1])
    other_port = settings.with_(extra_trusted_hosts=(f"127.0.0.1:{port + 1 if port < 65535 else port - 1}",))
    web_ports = settings.with_(extra_trusted_hosts=("127.0.0.1",))  # a bare host: ports 80 and 443
    for untrusting in (other_port, web_ports, settings.with_(s3_endpoint_url=f"http://127.0.0.1:{port + 1}")):
        error = error_of(untrusting, job(f"{media_server}/face.jpg"))
        assert error["code"] == ErrorCode.INPUT_VALIDATION and "private or internal" in error["message"]
    for trusting in (
        settings.with_(extra_trusted_hosts=(f"127.0.0.1:{port}",)),
        settings.with_(s3_endpoint_url=media_server),
    ):
        assert (
            run_job(job(f"{media_server}/face.jpg"), "trusted", settings=trusting, sink=lambda _: None)["status"]
            == "success"
        )
