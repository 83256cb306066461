"""Fetching a job's media: http(s) URLs, base64 / data URLs, or paths under allowed roots.

Each reference lands as a file in the job's work dir. The kind (image, video, audio) is decided from the
bytes, never from a name, and media are probed before anything decodes them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import os
import re
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import certifi
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool, Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import HTTPError, NewConnectionError
from urllib3.response import BaseHTTPResponse
from urllib3.util import parse_url
from urllib3.util.connection import create_connection

from core.contract import BBoxes, ErrorCode, InputDescriptor, JobError, Limits, MediaKind, MediaSource, Stage
from core.settings import Settings
from worker.media import MediaInfo, probe

AT = Stage.DOWNLOADS_STARTED
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[\w.-]+)*)(?P<b64>;base64)?,", re.I)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
_MAX_REDIRECTS = 5
_URL_TRAPS = re.compile(r"[\x00-\x20\x7f\\]")
_NOT_PUBLIC_V6 = tuple(ipaddress.IPv6Network(n) for n in ("fec0::/10", "64:ff9b:1::/48"))
_V4_INSIDE_V6 = tuple(ipaddress.IPv6Network(n) for n in ("::/96", "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b::/96"))
_IMAGE_MAGIC = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
)


@dataclass(frozen=True)
class FetchedMedia:
    """A fetched input on local disk with what we know about it."""

    field: str
    path: Path
    source: MediaSource
    kind: MediaKind
    info: MediaInfo
    bytes: int
    sha256: str

    def descriptor(self) -> InputDescriptor:
        """The metadata record of this input (no raw data)."""
        return InputDescriptor(
            field=self.field,
            source=self.source,
            kind=self.kind,
            bytes=self.bytes,
            sha256=self.sha256,
            duration_s=round(self.info.duration_s, 3) if self.info.duration_s and self.kind != "image" else None,
            width=self.info.width,
            height=self.info.height,
            format=self.info.format,
        )


def _invalid(field: str, message: str) -> JobError:
    return JobError(ErrorCode.INPUT_VALIDATION, f"{field}: {message}", at_stage=AT)


def sniff_image(head: bytes) -> str | None:
    """The image format from the first bytes, or None when they are not a still image we accept."""
    for magic, name in _IMAGE_MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    return None


def classify(ref: str) -> Literal["url", "base64", "path", "unsupported-scheme"]:
    """`url`, `base64` or `path`, from the shape of the reference."""
    lowered = ref[:16].lower()
    if lowered.startswith(("http://", "https://")):
        return "url"
    if lowered.startswith("data:"):
        return "base64"
    if "://" in ref[:32]:
        return "unsupported-scheme"
    if ref.startswith("/") or ref.startswith("./") or ref.startswith("../"):
        return "path"
    if len(ref) >= 64 and _BASE64_CHARS.match(ref[:4096]):
        return "base64"
    return "path"


def _decode_base64(ref: str, field: str, dest: Path, max_bytes: int) -> None:
    payload = ref
    match = _DATA_URL.match(ref)
    if match:
        if not match.group("b64"):
            raise _invalid(field, "data: URLs must be base64 encoded (data:<type>;base64,...)")
        payload = ref[match.end() :]
    payload = re.sub(r"\s+", "", payload)
    if len(payload) * 3 // 4 > max_bytes:
        raise _invalid(field, f"the data is larger than the {max_bytes // (1024 * 1024)} MB limit")
    try:
        data = base64.b64decode(
            payload + "=" * (-len(payload) % 4),
            altchars=b"-_" if "-" in payload or "_" in payload else None,
            validate=True,
        )
    except (binascii.Error, ValueError):
        raise _invalid(
            field, "not valid base64; send a data: URL, a plain base64 string, an https URL or a path"
        ) from None
    if not data:
        raise _invalid(field, "the base64 data is empty")
    dest.write_bytes(data)


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether an address is on the public internet, looking inside the IPv6 forms that carry an IPv4 address.

    `is_global` alone lets `::127.0.0.1`, `::ffff:0:10.0.0.1`, `64:ff9b::a9fe:a9fe` (NAT64) and `2002:7f00:1::`
    (6to4) through, and site-local `fec0::/10`; a translator or the OS may deliver them to the private address.
    """
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in network for network in _NOT_PUBLIC_V6):
            return False
        inner = address.sixtofour or next(
            (ipaddress.IPv4Address(address.packed[12:]) for network in _V4_INSIDE_V6 if address in network), None
        )
        if inner is not None and not _is_public(inner):
            return False
    return address.is_global and not address.is_multicast


def _parse_url(url: str, field: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path and query) of an http(s) URL, which urllib and urllib3 must read alike.

    The address check and the fetcher once read `http://127.0.0.1:PORT\\@1.1.1.1/` differently: a public host to
    one, loopback to the other. So what parsers disagree on is refused outright (backslashes, whitespace,
    control and non-ASCII characters, user info), and what is left must give both the same host and port.
    """
    if not url.isascii() or _URL_TRAPS.search(url):
        raise _invalid(
            field,
            "the URL holds a backslash, a space, a control or a non-ASCII character; percent-encode it "
            "(an international host name goes in its xn-- form)",
        )
    try:
        ours = urlsplit(url)
        port = ours.port
        theirs = parse_url(url)
    except ValueError:
        raise _invalid(field, "the URL is malformed: its host or port cannot be read") from None
    if ours.scheme not in ("http", "https"):
        raise _invalid(field, "only http and https URLs are accepted")
    if "@" in ours.netloc:
        raise _invalid(field, "the URL holds a user name or password (user@host); use a URL without them")
    host = ours.hostname or ""
    port = port or (443 if ours.scheme == "https" else 80)
    agreed = (theirs.scheme, (theirs.host or "").strip("[]").lower(), theirs.port or port) == (ours.scheme, host, port)
    plain = re.fullmatch(r"[a-z0-9_.-]+", host) or (":" in host and "%" not in host)
    if not host or not agreed or not plain:
        raise _invalid(field, "the URL's host is ambiguous (parsers read it differently); write it plainly")
    target = ours.path or "/"
    return ours.scheme, host, port, f"{target}?{ours.query}" if ours.query else target


def _addresses(host: str, port: int, field: str, settings: Settings) -> tuple[str, ...]:
    """The addresses this hop may connect to: the host resolved once, every answer checked unless it is trusted.

    The connection goes to exactly these (see _Pinned), so a DNS server that answers differently the second
    time (rebinding) is never asked a second time. A private target is refused before anything connects to
    it, so the error is the same whether a port there is open, closed or filtered: no port scanning.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise JobError(
            ErrorCode.DOWNLOAD_FAILED, f"{field}: the host {host!r} could not be resolved", at_stage=AT
        ) from None
    addresses = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
    trusted = settings.allow_private_urls or (host.lower(), port) in settings.trusted_hosts
    if not trusted and not (addresses and all(_is_public(ipaddress.ip_address(a)) for a in addresses)):
        raise _invalid(field, f"the URL's host {host!r} points at a private or internal address; use a public URL")
    return addresses


class _Pinned(HTTPConnection):
    """A urllib3 connection that connects to the addresses checked for its hop, not to a new lookup of the name.

    TLS still sends the URL's host name (SNI) and checks the certificate against it, and the Host header is the
    URL's, because urllib3 only ever sees the name: this replaces the one step where it would resolve it.
    """

    def __init__(self, *args: Any, addresses: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.addresses = addresses

    def _new_conn(self) -> socket.socket:
        failure: OSError | None = None
        for address in self.addresses:
            try:
                return create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except OSError as error:
                failure = error
        raise NewConnectionError(self, f"Failed to establish a new connection: {failure}")


class _PinnedHTTP(_Pinned, HTTPConnection):
    pass


class _PinnedHTTPS(_Pinned, HTTPSConnection):
    pass


def _open(scheme: str, host: str, port: int, addresses: tuple[str, ...], settings: Settings) -> HTTPConnectionPool:
    timeout = Timeout(connect=min(10.0, settings.download_timeout_s), read=settings.download_timeout_s)
    if scheme == "https":
        secure = HTTPSConnectionPool(
            host,
            port,
            timeout=timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            addresses=addresses,
        )
        secure.ConnectionCls = _PinnedHTTPS
        return secure
    plain = HTTPConnectionPool(host, port, timeout=timeout, retries=False, addresses=addresses)
    plain.ConnectionCls = _PinnedHTTP
    return plain


def open_checked(url: str, field: str, settings: Settings) -> tuple[HTTPConnectionPool, str]:
    """A connection pool for one URL that may only reach the addresses checked for it, and the request target.

    The one way out for any URL a job's sender chose (media here, the local endpoint's webhooks), so every such
    call gets the same parsing, the same private-address rule and the same pinning. Raises JobError naming field.
    """
    scheme, host, port, target = _parse_url(url, field)
    return _open(scheme, host, port, _addresses(host, port, field, settings), settings), target


def _download(url: str, field: str, dest: Path, settings: Settings, max_bytes: int) -> None:
    """Fetch a URL hop by hop: each hop (the first and every redirect) is parsed, resolved, checked and pinned."""
    for _ in range(_MAX_REDIRECTS + 1):
        pool, target = open_checked(url, field, settings)
        try:
            response = pool.urlopen(
                "GET", target, redirect=False, preload_content=False, headers={"Accept-Encoding": "identity"}
            )
            with response:
                if response.status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                    url = urljoin(url, response.headers["location"])
                    continue
                _save(response, field, dest, max_bytes)
                return
        except (HTTPError, OSError) as error:
            raise JobError(
                ErrorCode.DOWNLOAD_FAILED, f"{field}: could not fetch the URL: {type(error).__name__}", at_stage=AT
            ) from None
        finally:
            pool.close()
    raise JobError(ErrorCode.DOWNLOAD_FAILED, f"{field}: too many redirects", at_stage=AT, retryable=False)


def _save(response: BaseHTTPResponse, field: str, dest: Path, max_bytes: int) -> None:
    if response.status >= 400:
        retryable = response.status >= 500 or response.status == 429
        raise JobError(
            ErrorCode.DOWNLOAD_FAILED,
            f"{field}: the server answered HTTP {response.status}",
            at_stage=AT,
            retryable=retryable,
        )
    declared = response.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise _invalid(field, f"the file is larger than the {max_bytes // (1024 * 1024)} MB limit")
    received = 0
    with dest.open("wb") as out:
        for chunk in response.stream(1 << 16, decode_content=True):
            received += len(chunk)
            if received > max_bytes:
                raise _invalid(field, f"the file is larger than the {max_bytes // (1024 * 1024)} MB limit")
            out.write(chunk)
    if received == 0:
        raise _invalid(field, "the URL returned an empty file")


def path_refusal(ref: str, roots: tuple[Path, ...]) -> str | None:
    """Why a media path is refused (not absolute, or outside every allowed folder), or None when it may be read.

    The one rule for paths: the worker applies it before reading, and the dashboard before sending.
    """
    candidate = Path(ref)
    # realpath follows symlinks, so a link inside a root that points outside it is refused too.
    resolved = Path(os.path.realpath(candidate))
    allowed = [Path(os.path.realpath(root)) for root in roots]
    if not candidate.is_absolute() or not any(resolved.is_relative_to(root) for root in allowed):
        return f"paths must be absolute and inside an allowed folder ({', '.join(str(root) for root in roots)})"
    return None


def _copy_allowed_path(ref: str, field: str, dest: Path, roots: tuple[Path, ...], max_bytes: int) -> None:
    refusal = path_refusal(ref, roots)
    if refusal:
        raise _invalid(field, refusal)
    resolved = Path(os.path.realpath(ref))
    if not resolved.is_file():
        raise _invalid(field, f"no file at {ref}")
    size = resolved.stat().st_size
    if size > max_bytes:
        raise _invalid(field, f"the file is larger than the {max_bytes // (1024 * 1024)} MB limit")
    if size == 0:
        raise _invalid(field, "the file is empty")
    dest.write_bytes(resolved.read_bytes())


def fetch_bytes(
    ref: str, field: str, dest: Path, settings: Settings, *, max_bytes: int, extra_roots: tuple[Path, ...] = ()
) -> Literal["url", "base64", "path"]:
    """Put the referenced bytes at dest; return the source kind (url, base64, path)."""
    if "\x00" in ref:
        raise _invalid(field, "the reference contains a NUL character; send a URL, base64 data or a file path")
    source = classify(ref)
    if source == "url":
        _download(ref, field, dest, settings, min(max_bytes, settings.max_download_bytes))
    elif source == "base64":
        _decode_base64(ref, field, dest, max_bytes)
    elif source == "path":
        _copy_allowed_path(ref, field, dest, (*settings.allowed_roots, *extra_roots), max_bytes)
    else:
        raise _invalid(field, "only http(s) URLs, base64 / data: URLs and paths are accepted")
    return source


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_boxes(boxes: BBoxes | None, width: int, height: int) -> None:
    """Each face box must lie inside the picture it marks: a box beyond the edge (or a whole picture away) used to
    run to success without a word, the engine animating whatever region it clipped to. The contract checks what
    it can without the picture (whole numbers, order, size); this is the rest, once the picture's size is known."""
    if boxes is None:
        return
    for name in ("person1", "person2"):
        box = getattr(boxes, name)
        if box is None:
            continue
        x0, y0, x1, y1 = box
        if x1 > width or y1 > height:
            raise _invalid(
                f"bbox.{name}",
                f"[{x0}, {y0}, {x1}, {y1}] reaches beyond the {width}×{height} picture; give a box inside it "
                f"(x_max <= {width}, y_max <= {height}), or leave bbox out to let the worker find the faces",
            )


def fetch_visual(
    ref: str,
    field: str,
    work_dir: Path,
    settings: Settings,
    extra_roots: tuple[Path, ...] = (),
    boxes: BBoxes | None = None,
) -> FetchedMedia:
    """Fetch the portrait image or video, and check it is one, within the pixel limits, with `boxes` inside it."""
    dest = work_dir / "cond_input"
    source = fetch_bytes(ref, field, dest, settings, max_bytes=Limits.MAX_VIDEO_BYTES, extra_roots=extra_roots)
    with dest.open("rb") as handle:
        head = handle.read(32)
    image_format = sniff_image(head)
    size = dest.stat().st_size
    if image_format and size > Limits.MAX_IMAGE_BYTES:
        raise _invalid(field, f"images may be at most {Limits.MAX_IMAGE_BYTES // (1024 * 1024)} MB")
    info = probe(dest, field=field)
    if not info.has_video or not info.width or not info.height:
        raise _invalid(field, "the file holds no picture; send a portrait image (JPEG/PNG/WebP) or a video")
    # Check dimensions from the header before anything decodes the pixels (decompression bombs).
    if max(info.width, info.height) > Limits.MAX_IMAGE_SIDE or info.width * info.height > Limits.MAX_IMAGE_PIXELS:
        raise _invalid(
            field,
            f"the picture is {info.width}×{info.height}; the limit is {Limits.MAX_IMAGE_SIDE} px a side and "
            f"{Limits.MAX_IMAGE_PIXELS // 1_000_000} megapixels: scale it down",
        )
    check_boxes(boxes, info.width, info.height)
    kind: MediaKind = "image" if image_format else "video"
    if kind == "video":
        if info.frames == 0 or (info.duration_s is not None and info.duration_s <= 0):
            raise _invalid(field, "the video has no frames")
        if info.duration_s is not None and info.duration_s > Limits.MAX_AUDIO_SECONDS * 2:
            raise _invalid(
                field,
                f"the video is {info.duration_s:.0f} s long; trim it to under {Limits.MAX_AUDIO_SECONDS * 2:.0f} s",
            )
    final = dest.rename(work_dir / f"cond.{image_format or 'video'}")
    return FetchedMedia(field, final, source, kind, info, size, _digest(final))


def wav_declared_seconds(path: Path) -> tuple[float, float] | None:
    """(seconds the WAV header declares, seconds the file holds), or None when it is not a PCM WAV.

    ffprobe measures a WAV by its size, so a header that lies (a file claiming ten hours) is caught here.
    """
    with path.open("rb") as handle:
        head = handle.read(4096)
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    byte_rate = 0
    position = 12
    while position + 8 <= len(head):
        chunk, size = head[position : position + 4], struct.unpack("<I", head[position + 4 : position + 8])[0]
        if chunk == b"fmt " and position + 20 <= len(head):
            byte_rate = struct.unpack("<I", head[position + 16 : position + 20])[0]
        elif chunk == b"data":
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None  # streamed WAVs (pipes, some browsers) leave the size unset: nothing is claimed
            held = max(0, path.stat().st_size - position - 8)
            return size / byte_rate, held / byte_rate
        position += 8 + size + (size % 2)
    return None


def fetch_audio(
    ref: str, field: str, work_dir: Path, settings: Settings, extra_roots: tuple[Path, ...] = ()
) -> FetchedMedia:
    """Fetch one person's speech and check it is audio of an acceptable length."""
    dest = work_dir / f"{field.replace('.', '_')}_input"
    source = fetch_bytes(ref, field, dest, settings, max_bytes=Limits.MAX_AUDIO_BYTES, extra_roots=extra_roots)
    info = probe(dest, field=field)
    if not info.has_audio:
        raise _invalid(field, "the file holds no audio; send speech as WAV, MP3, OGG/Opus, WebM or M4A")
    declared = wav_declared_seconds(dest)
    if declared is not None and declared[0] > Limits.MAX_AUDIO_SECONDS:
        raise _invalid(
            field,
            f"the WAV header claims {declared[0]:.0f} s of audio, over the {Limits.MAX_AUDIO_SECONDS:.0f} s limit "
            f"(the file holds {declared[1]:.1f} s): re-export it",
        )
    if declared is not None and declared[0] - declared[1] > 0.5:
        raise _invalid(
            field,
            f"the WAV file is truncated: its header claims {declared[0]:.1f} s, it holds "
            f"{declared[1]:.1f} s; re-export it",
        )
    if info.duration_s is not None and info.duration_s > Limits.MAX_AUDIO_SECONDS:
        raise _invalid(
            field,
            f"the audio is {info.duration_s:.0f} s long; the limit is {Limits.MAX_AUDIO_SECONDS:.0f} s: split it",
        )
    return FetchedMedia(field, dest, source, "audio", info, dest.stat().st_size, _digest(dest))
