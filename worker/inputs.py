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
from urllib.parse import urljoin, urlsplit

from worker.contract import ErrorCode, InputDescriptor, JobError, Limits, Stage
from worker.media import MediaInfo, probe
from worker.settings import Settings

AT = Stage.DOWNLOADS_STARTED
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w-]+=[\w.-]+)*)(?P<b64>;base64)?,", re.I)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=_\-\s]+$")
_MAX_REDIRECTS = 5
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
    source: str
    kind: str
    info: MediaInfo
    bytes: int
    sha256: str

    def descriptor(self) -> InputDescriptor:
        """The metadata record of this input (no raw data)."""
        return InputDescriptor(
            field=self.field,
            source=self.source,  # type: ignore[arg-type]
            kind=self.kind,  # type: ignore[arg-type]
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


def classify(ref: str) -> str:
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


def _check_host(host: str, field: str, settings: Settings) -> None:
    """Refuse hosts that resolve to loopback, private, link-local or other internal addresses."""
    if settings.allow_private_urls or host.lower() in settings.trusted_hosts:
        return
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        raise JobError(
            ErrorCode.DOWNLOAD_FAILED, f"{field}: the host {host!r} could not be resolved", at_stage=AT
        ) from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global or address.is_multicast:
            raise _invalid(field, f"the URL's host {host!r} points at a private or internal address; use a public URL")


def _download(url: str, field: str, dest: Path, settings: Settings, max_bytes: int) -> None:
    import requests

    for _ in range(_MAX_REDIRECTS + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid(field, "only http and https URLs are accepted")
        _check_host(parts.hostname, field, settings)
        try:
            response = requests.get(url, stream=True, timeout=(10, settings.download_timeout_s), allow_redirects=False)
        except requests.RequestException as error:
            raise JobError(
                ErrorCode.DOWNLOAD_FAILED, f"{field}: could not fetch the URL: {type(error).__name__}", at_stage=AT
            ) from None
        with response:
            if response.is_redirect:
                url = urljoin(url, response.headers.get("location", ""))
                continue
            if response.status_code >= 400:
                retryable = response.status_code >= 500 or response.status_code == 429
                raise JobError(
                    ErrorCode.DOWNLOAD_FAILED,
                    f"{field}: the server answered HTTP {response.status_code}",
                    at_stage=AT,
                    retryable=retryable,
                )
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise _invalid(field, f"the file is larger than the {max_bytes // (1024 * 1024)} MB limit")
            received = 0
            with dest.open("wb") as out:
                for chunk in response.iter_content(chunk_size=1 << 16):
                    received += len(chunk)
                    if received > max_bytes:
                        raise _invalid(field, f"the file is larger than the {max_bytes // (1024 * 1024)} MB limit")
                    out.write(chunk)
            if received == 0:
                raise _invalid(field, "the URL returned an empty file")
            return
    raise JobError(ErrorCode.DOWNLOAD_FAILED, f"{field}: too many redirects", at_stage=AT, retryable=False)


def _copy_allowed_path(ref: str, field: str, dest: Path, roots: tuple[Path, ...], max_bytes: int) -> None:
    candidate = Path(ref)
    # realpath follows symlinks, so a link inside a root that points outside it is refused too.
    resolved = Path(os.path.realpath(candidate))
    allowed = [Path(os.path.realpath(root)) for root in roots]
    if not candidate.is_absolute() or not any(resolved.is_relative_to(root) for root in allowed):
        names = ", ".join(str(root) for root in roots)
        raise _invalid(field, f"paths must be absolute and inside an allowed folder ({names})")
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
) -> str:
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


def fetch_visual(
    ref: str, field: str, work_dir: Path, settings: Settings, extra_roots: tuple[Path, ...] = ()
) -> FetchedMedia:
    """Fetch the portrait image or video, and check it is one, within the pixel limits."""
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
    kind = "image" if image_format else "video"
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
