"""The artifact store: where videos, thumbnails and metadata live, behind one small interface.

Keys are `{prefix}/{job_id}/{name}`. `S3Store` talks to any S3-compatible server through boto3;
`LocalStore` keeps files in a folder (the RunPod network volume, or the embedded default's data dir).
Writes are idempotent: putting the same key again replaces the object. Every write checks its key first
(`checked_key`): each part fits the contract's KEY_PART, and a job's writes stay under the job's own folder.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from core.contract import KEY_PART_RULE, ErrorCode, JobError, Stage, is_key_part, safe_file_name
from core.settings import Settings

CONTENT_TYPES = {".mp4": "video/mp4", ".jpg": "image/jpeg", ".json": "application/json", ".wav": "audio/wav"}


def content_type(name: str) -> str:
    """The MIME type for a key, fixed for our own artifacts (guessing gets MP4 wrong on some systems)."""
    suffix = Path(name).suffix.lower()
    return CONTENT_TYPES.get(suffix) or mimetypes.guess_type(name)[0] or "application/octet-stream"


def artifact_key(prefix: str, job_id: str, name: str) -> str:
    """`{prefix}/{job_id}/{name}`, with no leading or doubled slashes."""
    return "/".join(part.strip("/") for part in (prefix, job_id, name) if part.strip("/"))


PARTIAL_NAME = "partial-{clips:03d}.mp4"
"""A streaming job's video so far, beside its final artifacts: one object per finished clip, removed when the
job ends (a cancelled job keeps its last one, the video its user saw)."""


def partial_name(clips: int) -> str:
    """The object name of the partial video holding `clips` finished clips."""
    return PARTIAL_NAME.format(clips=clips)


def is_partial_key(key: str) -> bool:
    """Whether a key names a partial video (see PARTIAL_NAME)."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith("partial-") and name.endswith(".mp4") and name[8:-4].isdigit()


def checked_key(key: str, within: str = "") -> str:
    """The key, when each of its parts fits KEY_PART and it lies under `within`; E_INPUT_VALIDATION otherwise.

    The contract already refuses ids and prefixes that could climb out of their folder; this is the store's own
    check, so that no caller (a job id from the CLI, a future field) can write beside another job's files.
    An S3 key such as `jobs/a/../b/video.mp4` is as dangerous as a path: servers and mirrors normalise it.
    """
    if not all(is_key_part(part) for part in key.split("/")):
        raise JobError(ErrorCode.INPUT_VALIDATION, f"store key {key!r}: in each folder of a key, {KEY_PART_RULE}")
    if within and not key.startswith(within.strip("/") + "/"):
        raise JobError(ErrorCode.INPUT_VALIDATION, f"store key {key!r} is outside its job's folder {within!r}")
    return key


def deletable_key(key: str) -> str:
    """A key that may be deleted: any of the store's own objects, including those written before KEY_PART (an
    item id with a space was accepted then, and its run must stay deletable), but never one that climbs folders.
    """
    parts = key.split("/")
    if any(part in ("", ".", "..") or "\x00" in part or "\\" in part for part in parts):
        raise JobError(ErrorCode.INPUT_VALIDATION, f"store key {key!r}: not the key of an object in this store")
    return key


class NotRegularFile(OSError):
    """A store key names something other than a regular file: a FIFO, a device, a socket or a folder."""


def read_regular(path: Path, limit: int = -1) -> bytes:
    """The bytes of the regular file at `path` (at most `limit`); NotRegularFile for anything else.

    Anyone who can write to a folder store can put a FIFO where a run's curation.json or metadata.json belongs,
    and opening a FIFO for reading waits for a writer forever: `catalog tag`, History's Save and settle() hung.
    The file is opened with O_NONBLOCK (so the open itself never waits) and checked with fstat on the open
    descriptor, so nothing can be swapped in between the check and the read.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "not a file"
            raise NotRegularFile(f"{path.name} is {kind}, not a regular file")
        os.set_blocking(descriptor, True)
        with os.fdopen(descriptor, "rb", closefd=False) as file:
            return file.read(limit)
    finally:
        os.close(descriptor)


def _write_beside(target: Path, fill: Callable[[Path], object]) -> None:
    """Write `target` through a temporary file of its own in the same folder, then rename it into place.

    The temporary name is new each time (O_EXCL), so nothing planted at a fixed `.partial` name (a FIFO would
    block the write) can stand in for it, and a failed write leaves no temporary file behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
    os.close(descriptor)
    temporary = Path(name)
    try:
        temporary.chmod(0o644)  # as an ordinary new file, not mkstemp's owner-only mode: a worker may read it
        fill(temporary)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)


UPLOADS_PREFIX = "uploads"


def upload_key(data: bytes, name: str) -> str:
    """`uploads/{sha256}/{name}`: media a person hands in, keyed by content so the same bytes are stored once,
    with the name cleaned by the contract's one rule for key parts. The one upload-key rule (the client and the
    dashboard each had their own, cleaning names differently)."""
    return f"{UPLOADS_PREFIX}/{hashlib.sha256(data).hexdigest()}/{safe_file_name(name)}"


class Store(Protocol):
    """Put, fetch, list and delete artifacts by key, and mint URLs for them."""

    kind: str

    def local_path(self, key: str) -> Path | None:
        """The file behind a key when the store is a folder on this machine (which a local worker sharing it can
        read); None for a bucket."""

    def put(self, key: str, path: Path, *, within: str = "") -> int:
        """Store the file at `key` (which must lie under `within`, see checked_key); return its size in bytes."""

    def put_bytes(self, key: str, data: bytes, *, within: str = "") -> int:
        """Store bytes at `key` (which must lie under `within`); return their size."""

    def get(self, key: str) -> bytes:
        """The object's bytes; JobError(E_DOWNLOAD_FAILED) when missing."""

    def download(self, key: str, dest: Path) -> Path:
        """Copy the object to a local file."""

    def url(self, key: str) -> str:
        """A URL a browser or worker can fetch the object from (presigned for S3)."""

    def list(self, prefix: str) -> Iterator[str]:
        """Every key under `prefix`."""

    def delete(self, key: str) -> None:
        """Remove the object; missing objects are fine."""

    def exists(self, key: str) -> bool:
        """Whether the key is stored."""


class LocalStore:
    """A folder as an artifact store: the embedded default, and RunPod's network volume (`volume`)."""

    kind = "volume"

    def __init__(self, root: Path, base_url: str | None = None) -> None:
        self.root = root
        self.base_url = base_url.rstrip("/") if base_url else None

    def local_path(self, key: str) -> Path:
        """The file behind a key (see Store.local_path)."""
        return self.path(key)

    def path(self, key: str) -> Path:
        """The file behind a key; keys that would leave the root are refused."""
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise JobError(ErrorCode.INPUT_VALIDATION, f"store key {key!r} leaves the store's folder")
        return target

    def _written(self, key: str, fill: Callable[[Path], object]) -> Path:
        """Write a key through _write_beside; a folder that cannot take it (a folder or file already at its name,
        a full disk) is JobError E_UPLOAD naming the key, not a bare OSError."""
        target = self.path(key)
        try:
            _write_beside(target, fill)
        except OSError as error:
            raise JobError(ErrorCode.UPLOAD, f"could not write {key} to the local store: {error}") from error
        return target

    def put(self, key: str, path: Path, *, within: str = "") -> int:
        """Copy the file in via a temporary name, so readers never see half a file."""
        target = self._written(checked_key(key, within), lambda temporary: shutil.copyfile(path, temporary))
        return target.stat().st_size

    def put_bytes(self, key: str, data: bytes, *, within: str = "") -> int:
        """Write bytes via a temporary name."""
        self._written(checked_key(key, within), lambda temporary: temporary.write_bytes(data))
        return len(data)

    def read(self, key: str, limit: int = -1) -> bytes:
        """The file's bytes (at most `limit`), read only from a regular file (read_regular); FileNotFoundError
        when there is none, NotRegularFile when something else is at the key."""
        return read_regular(self.path(key), limit)

    def get(self, key: str) -> bytes:
        """The file's bytes."""
        try:
            return self.read(key)
        except (FileNotFoundError, NotADirectoryError):
            raise JobError(ErrorCode.DOWNLOAD_FAILED, f"{key} is not in the local store", retryable=False) from None
        except OSError as error:
            raise JobError(ErrorCode.DOWNLOAD_FAILED, f"could not read {key}: {error}", retryable=False) from error

    def download(self, key: str, dest: Path) -> Path:
        """Copy the file out."""
        dest.write_bytes(self.get(key))
        return dest

    def url(self, key: str) -> str:
        """An http URL when a file server is configured (the local endpoint serves /files/), else file://."""
        if self.base_url:
            return f"{self.base_url}/{quote(key)}"
        return self.path(key).as_uri()

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under the prefix, in sorted order."""
        base = self.root / prefix.strip("/") if prefix.strip("/") else self.root
        if not base.exists():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.endswith(".partial"):
                yield path.relative_to(self.root).as_posix()

    def delete(self, key: str) -> None:
        """Remove the file and any folder left empty."""
        target = self.path(deletable_key(key))
        target.unlink(missing_ok=True)
        parent = target.parent
        root = self.root.resolve()
        while parent != root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def exists(self, key: str) -> bool:
        """Whether the file exists."""
        return self.path(key).is_file()


class S3Store:
    """Any S3-compatible bucket through boto3, with presigned GET URLs."""

    kind = "s3"

    def local_path(self, key: str) -> None:
        """A bucket has no file on this machine (see Store.local_path)."""
        return None

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        url_expiry_s: int = 7 * 24 * 3600,
        max_attempts: int = 5,
    ) -> None:
        import boto3
        from botocore.config import Config

        self.bucket = bucket
        self.url_expiry_s = url_expiry_s
        self.client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": max_attempts, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def _fail(self, action: str, key: str, error: Exception) -> JobError:
        # The message names the bucket and key but never the credentials.
        return JobError(
            ErrorCode.UPLOAD, f"S3 {action} of s3://{self.bucket}/{key} failed: {type(error).__name__}: {error}"
        )

    def put(self, key: str, path: Path, *, within: str = "") -> int:
        """Upload with an explicit Content-Type."""
        checked_key(key, within)
        try:
            self.client.upload_file(str(path), self.bucket, key, ExtraArgs={"ContentType": content_type(key)})
        except Exception as error:  # boto3 raises many unrelated types; all mean the upload failed
            raise self._fail("upload", key, error) from error
        return path.stat().st_size

    def put_bytes(self, key: str, data: bytes, *, within: str = "") -> int:
        """Upload bytes with an explicit Content-Type."""
        checked_key(key, within)
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type(key))
        except Exception as error:
            raise self._fail("upload", key, error) from error
        return len(data)

    def get(self, key: str) -> bytes:
        """Download the object's bytes."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except Exception as error:
            raise JobError(ErrorCode.DOWNLOAD_FAILED, f"could not read s3://{self.bucket}/{key}: {error}") from error

    def download(self, key: str, dest: Path) -> Path:
        """Download to a local file."""
        try:
            self.client.download_file(self.bucket, key, str(dest))
        except Exception as error:
            raise JobError(ErrorCode.DOWNLOAD_FAILED, f"could not read s3://{self.bucket}/{key}: {error}") from error
        return dest

    def url(self, key: str) -> str:
        """A presigned GET URL, valid for url_expiry_s."""
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=self.url_expiry_s
        )

    def list(self, prefix: str) -> Iterator[str]:
        """Keys under the prefix, page by page."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix.strip("/")):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except Exception as error:  # any boto failure means the listing is incomplete
            raise JobError(
                ErrorCode.DOWNLOAD_FAILED,
                f"could not list s3://{self.bucket}/{prefix}: {type(error).__name__}: {error}",
            ) from error

    def delete(self, key: str) -> None:
        """Delete the object."""
        deletable_key(key)
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            raise self._fail("delete", key, error) from error

    def exists(self, key: str) -> bool:
        """Whether a HEAD on the key succeeds."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception:
            return False
        return True

    def ensure_bucket(self) -> None:
        """Create the bucket when it does not exist yet (local S3 servers start empty)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception:
            self.client.create_bucket(Bucket=self.bucket)


def open_store(settings: Settings, kind: str | None = None, bucket: str | None = None) -> Store:
    """The store a job or the dashboard should use: `s3` or `volume` (inline jobs stage in the volume)."""
    kind = kind or settings.store
    if kind == "s3":
        if bucket and bucket not in settings.s3_buckets:
            # The worker's keys can often write more buckets than the owner meant jobs to fill.
            raise JobError(
                ErrorCode.INPUT_VALIDATION,
                f"output_config.bucket: {bucket!r} is not a bucket this worker publishes to; leave it out to use "
                "the worker's S3_BUCKET, or list it in STUDIO_S3_BUCKETS on the worker",
                at_stage=Stage.VALIDATION_OK,
            )
        name = bucket or settings.s3_bucket
        if not name:
            raise JobError(
                ErrorCode.UPLOAD,
                "output_config.store is s3 but no bucket is set: set S3_BUCKET (and S3_ENDPOINT_URL, "
                "S3_ACCESS_KEY, S3_SECRET_KEY) on the worker, or pass output_config.bucket",
                at_stage=Stage.UPLOAD_STARTED,
                retryable=False,
            )
        return S3Store(
            name,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            url_expiry_s=settings.url_expiry_s,
        )
    return LocalStore(settings.artifact_dir, settings.files_base_url)
