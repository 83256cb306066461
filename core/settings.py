"""One settings object, read from the environment (and, in the dashboard, from st.secrets).

No other module reads os.environ: they all take a Settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

LOCAL_ENDPOINT_ID = "local"
DEFAULT_LOCAL_PORT = 8799
RUNPOD_API_BASE = "https://api.runpod.ai/v2"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "infinitetalk-studio"


DEFAULT_PORTS = {"http": 80, "https": 443}


def trusted_entry(entry: str) -> set[tuple[str, int]]:
    """A STUDIO_TRUSTED_HOSTS entry as (host, port) pairs: `host:port` (`[v6]:port`) is that port, a bare host
    its web ports 80 and 443."""
    parts = urlsplit(f"//{entry.strip()}")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return set()
    if not host:
        return set()
    return {(host, port)} if port else {(host, 80), (host, 443)}


def _flag(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Where the endpoint, the artifact store, the data and the engine are.

    `endpoint_base_url` is RunPod's API base (`https://api.runpod.ai/v2`) or the local endpoint's
    (`http://127.0.0.1:8799/v2`); the client appends `/{endpoint_id}/run` and so on.
    """

    data_dir: Path = field(default_factory=_default_data_dir)
    engine: str = "preview"
    endpoint_id: str = LOCAL_ENDPOINT_ID
    endpoint_base_url: str = f"http://127.0.0.1:{DEFAULT_LOCAL_PORT}/v2"
    api_key: str | None = field(default=None, repr=False)
    store: str = "volume"
    volume_dir: Path | None = None
    files_base_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key: str | None = field(default=None, repr=False)
    s3_secret_key: str | None = field(default=None, repr=False)
    url_expiry_s: int = 7 * 24 * 3600
    input_roots: tuple[Path, ...] = (Path("/runpod-volume"),)
    allow_private_urls: bool = False
    partial_preview: bool = True
    """Publish a streaming job's video so far as each clip is encoded (STUDIO_PARTIAL_PREVIEW, on unless 0/false):
    the Live card plays it while the rest renders; see worker/partial.py."""
    partial_every_s: float = 10.0
    """At least this long between two partial videos (STUDIO_PARTIAL_EVERY_S; 0 = after every clip): a GPU clip
    takes minutes and gets its own, the preview engine's sub-second clips are grouped so it stays fast."""
    max_download_bytes: int = 200 * 1024 * 1024
    download_timeout_s: float = 60.0
    catalog_path: Path | None = None
    local_port: int = DEFAULT_LOCAL_PORT
    local_workers: int = 1
    execution_timeout_s: float = 1800.0
    tmp_dir: Path | None = None
    extra_trusted_hosts: tuple[str, ...] = ()
    weights: Mapping[str, str] = field(default_factory=dict)
    tts_engine: str | None = None
    """What speaks tts_audio (STUDIO_TTS_ENGINE): `espeak` (espeak-ng) or `kokoro` (Kokoro-82M); unset, Kokoro
    with the infinitetalk engine (the GPU image) and espeak-ng with the preview engine (see speech_engine)."""
    kokoro_dir: Path = Path("/runpod-volume/models/Kokoro-82M")
    """Kokoro-82M's config.json, kokoro-v1_0.pth and voices/*.pt (KOKORO_DIR; worker/kokoro_tts.py lists them)."""
    kokoro_g2p: str = "misaki"
    """How Kokoro turns English text into phonemes (STUDIO_KOKORO_G2P): `misaki` (misaki's English G2P with the
    spaCy model the image bakes, as InfiniteTalk's app does) or `espeak` (misaki's espeak-ng G2P, which needs no
    spaCy model: the tests' and the selftest's)."""
    local_max_queued: int = 1000
    local_max_queued_mb: int = 2048
    local_body_timeout_s: float = 60.0
    s3_extra_buckets: tuple[str, ...] = ()
    """Buckets besides S3_BUCKET that a job's output_config.bucket may name (STUDIO_S3_BUCKETS)."""
    gpu: str | None = None
    """The endpoint's GPU type for estimates before any run has recorded one (STUDIO_GPU, e.g. `H100 PRO`)."""
    price_tier: str = "flex"
    """RunPod's price tier runs are costed at: flex (scale to zero) or active (always on), STUDIO_PRICE_TIER."""
    gpu_prices: str = ""
    """Per-second price overrides, `H100 PRO=0.00116; A100=0.00076` (STUDIO_GPU_PRICES); see core/prices.py."""
    rest_base_url: str | None = None
    """RunPod's REST API v2 base (RUNPOD_REST_BASE_URL; unset: `https://api.runpod.io/v2` for a RunPod endpoint):
    Endpoint health's workers, logs and billing and the GPU catalogue's prices are read there."""

    @property
    def artifact_dir(self) -> Path:
        """The local folder store's root (the `volume` store)."""
        return self.volume_dir or self.data_dir / "artifacts"

    @property
    def work_root(self) -> Path:
        """Where per-job temp dirs are made (each is removed when its job ends)."""
        return self.tmp_dir or self.data_dir / "tmp"

    @property
    def s3_buckets(self) -> frozenset[str]:
        """Every bucket this worker writes to with its keys: S3_BUCKET and STUDIO_S3_BUCKETS."""
        return frozenset(name for name in (self.s3_bucket, *self.s3_extra_buckets) if name)

    @property
    def trusted_hosts(self) -> frozenset[tuple[str, int]]:
        """(host, port) pairs a job may fetch from even on a private network: the configured S3 endpoint and
        file server (a self-hosted MinIO or SeaweedFS on the LAN), each on its own port, plus
        STUDIO_TRUSTED_HOSTS. Trust is per port: trusting a LAN MinIO on 9000 must not open the same machine's
        other services to jobs."""
        pairs = set()
        for url in (self.s3_endpoint_url, self.files_base_url):
            if url:
                parts = urlsplit(url)
                if parts.hostname:
                    pairs.add((parts.hostname.lower(), parts.port or DEFAULT_PORTS.get(parts.scheme, 443)))
        for entry in self.extra_trusted_hosts:
            pairs.update(trusted_entry(entry))
        return frozenset(pairs)

    @property
    def speech_engine(self) -> str:
        """What speaks tts_audio: STUDIO_TTS_ENGINE, else Kokoro beside the GPU engine and espeak-ng beside the
        preview (which runs anywhere, without Kokoro's weights)."""
        return self.tts_engine or ("kokoro" if self.engine == "infinitetalk" else "espeak")

    @property
    def endpoint_speech_engine(self) -> str:
        """What speaks tts_audio on the endpoint a client sends to, so a form offers that engine's voices: the
        local endpoint's worker shares these settings (speech_engine); a RunPod endpoint runs the GPU image, which
        speaks with Kokoro, unless STUDIO_TTS_ENGINE says otherwise here too."""
        return self.speech_engine if self.is_local_endpoint else (self.tts_engine or "kokoro")

    @property
    def catalog_file(self) -> Path:
        """The SQLite catalogue's path."""
        return self.catalog_path or self.data_dir / "catalog.db"

    @property
    def allowed_roots(self) -> tuple[Path, ...]:
        """Folders a job may name by path: the RunPod volume, configured roots and the local store."""
        return (*self.input_roots, self.artifact_dir)

    @property
    def is_local_endpoint(self) -> bool:
        """True when the client talks to the bundled local endpoint rather than RunPod's cloud."""
        return not self.endpoint_base_url.startswith(RUNPOD_API_BASE)

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields changed (each field has its own type, so the values can only be Any here)."""
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from environment variables (RunPod's and S3's usual names, STUDIO_* for the rest)."""
        env = os.environ if env is None else env
        data_dir = Path(env["STUDIO_DATA_DIR"]) if env.get("STUDIO_DATA_DIR") else _default_data_dir()
        port = int(env.get("STUDIO_LOCAL_PORT") or DEFAULT_LOCAL_PORT)
        endpoint_id = env.get("RUNPOD_ENDPOINT_ID") or LOCAL_ENDPOINT_ID
        default_base = RUNPOD_API_BASE if env.get("RUNPOD_ENDPOINT_ID") else f"http://127.0.0.1:{port}/v2"
        s3_bucket = env.get("S3_BUCKET") or env.get("BUCKET_NAME")
        roots = tuple(Path(p) for p in (env.get("STUDIO_INPUT_ROOTS") or "/runpod-volume").split(os.pathsep) if p)
        weight_vars = (
            "CKPT_DIR",
            "INFINITETALK_DIR",
            "WAV2VEC_DIR",
            "QUANT_DIR",
            "LORA_DIR",
            "INFINITETALK_SRC",
            "INFINITETALK_PRELOAD",
        )
        return cls(
            data_dir=data_dir,
            engine=env.get("STUDIO_ENGINE") or "preview",
            endpoint_id=endpoint_id,
            endpoint_base_url=(env.get("RUNPOD_ENDPOINT_BASE_URL") or default_base).rstrip("/"),
            api_key=env.get("RUNPOD_API_KEY") or None,
            store=env.get("STUDIO_STORE") or ("s3" if s3_bucket else "volume"),
            volume_dir=Path(env["STUDIO_VOLUME_DIR"]) if env.get("STUDIO_VOLUME_DIR") else None,
            files_base_url=env.get("STUDIO_FILES_BASE_URL") or None,
            s3_endpoint_url=env.get("S3_ENDPOINT_URL") or env.get("S3_ENDPOINT") or None,
            s3_bucket=s3_bucket,
            s3_region=env.get("S3_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            s3_access_key=env.get("S3_ACCESS_KEY") or env.get("AWS_ACCESS_KEY_ID") or None,
            s3_secret_key=env.get("S3_SECRET_KEY") or env.get("AWS_SECRET_ACCESS_KEY") or None,
            url_expiry_s=int(env.get("STUDIO_URL_EXPIRY_S") or 7 * 24 * 3600),
            input_roots=roots,
            allow_private_urls=_flag(env.get("STUDIO_ALLOW_PRIVATE_URLS")),
            partial_preview=_flag(env.get("STUDIO_PARTIAL_PREVIEW"), default=True),
            partial_every_s=float(env.get("STUDIO_PARTIAL_EVERY_S") or 10.0),
            max_download_bytes=int(env.get("STUDIO_MAX_DOWNLOAD_BYTES") or 200 * 1024 * 1024),
            catalog_path=Path(env["STUDIO_CATALOG"]) if env.get("STUDIO_CATALOG") else None,
            local_port=port,
            local_workers=int(env.get("STUDIO_LOCAL_WORKERS") or 1),
            execution_timeout_s=float(env.get("STUDIO_EXECUTION_TIMEOUT_S") or 1800),
            tmp_dir=Path(env["STUDIO_TMP_DIR"]) if env.get("STUDIO_TMP_DIR") else None,
            extra_trusted_hosts=tuple(
                h.strip() for h in (env.get("STUDIO_TRUSTED_HOSTS") or "").split(",") if h.strip()
            ),
            weights={name: env[name] for name in weight_vars if env.get(name)},
            tts_engine=(env.get("STUDIO_TTS_ENGINE") or "").strip().lower() or None,
            kokoro_dir=Path(env.get("KOKORO_DIR") or "/runpod-volume/models/Kokoro-82M"),
            kokoro_g2p=(env.get("STUDIO_KOKORO_G2P") or "misaki").strip().lower(),
            local_max_queued=int(env.get("STUDIO_LOCAL_MAX_QUEUED") or 1000),
            local_max_queued_mb=int(env.get("STUDIO_LOCAL_MAX_QUEUED_MB") or 2048),
            local_body_timeout_s=float(env.get("STUDIO_LOCAL_BODY_TIMEOUT_S") or 60),
            s3_extra_buckets=tuple(b.strip() for b in (env.get("STUDIO_S3_BUCKETS") or "").split(",") if b.strip()),
            gpu=env.get("STUDIO_GPU") or None,
            price_tier=(env.get("STUDIO_PRICE_TIER") or "flex").strip().lower(),
            gpu_prices=env.get("STUDIO_GPU_PRICES") or "",
            rest_base_url=(env.get("RUNPOD_REST_BASE_URL") or "").rstrip("/") or None,
        )

    def secrets(self) -> list[str]:
        """Secret values that must never appear in logs, metadata, the catalogue or URLs.

        The S3 access key id is not one: it is an identifier, and every presigned URL carries it by design.
        """
        return [s for s in (self.api_key, self.s3_secret_key) if s]
