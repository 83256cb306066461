"""With an API key, nothing the endpoint serves is open (/docs, /openapi.json and /files/ once were); a key is
required to listen beyond loopback; odd paths answer in RunPod's JSON shape, never a plain-text 500."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import requests

from tests.endpoint_server import ROOT, running_endpoint
from tests.s3server import free_port

PACED = "tests.endpoint_runners:paced"
KEY = "guard-key-1234"


def test_every_route_wants_the_key_when_one_is_set(tmp_path: Path) -> None:
    video = tmp_path / "artifacts" / "outputs" / "job-1" / "video.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"video bytes")
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path), "RUNPOD_API_KEY": KEY}, PACED) as base:
        root = base.removesuffix("/v2")
        paths = ("/docs", "/openapi.json", "/redoc", "/files/outputs/job-1/video.mp4", "/v2/local/health")
        without = {path: requests.get(f"{root}{path}", timeout=10) for path in paths}
        auth = {"Authorization": f"Bearer {KEY}"}
        served = requests.get(f"{root}/files/outputs/job-1/video.mp4", headers=auth, timeout=10)
        schema = requests.get(f"{root}/openapi.json", headers=auth, timeout=10)

    assert {path: answer.status_code for path, answer in without.items()} == dict.fromkeys(paths, 401)
    assert all("Authorization: Bearer <key>" in answer.json()["error"] for answer in without.values())
    assert served.status_code == 200 and served.content == b"video bytes"
    assert schema.status_code == 200 and "paths" in schema.json()


def test_a_nul_in_a_file_key_gets_a_json_400(tmp_path: Path) -> None:
    with running_endpoint({"STUDIO_DATA_DIR": str(tmp_path)}, PACED) as base:
        root = base.removesuffix("/v2")
        answers = [requests.get(f"{root}/files/{key}", timeout=10) for key in ("%00", "a%00b/c.mp4")]

    assert [answer.status_code for answer in answers] == [400, 400]
    assert all("NUL" in answer.json()["error"] for answer in answers)


def test_listening_beyond_loopback_without_a_key_is_refused_naming_the_fix(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RUNPOD_API_KEY"}
    for host in ("0.0.0.0", "::", "192.168.1.20"):
        refused = subprocess.run(
            [sys.executable, "-m", "studio", "endpoint", "--host", host, "--port", str(free_port())],
            cwd=ROOT,
            env={**env, "STUDIO_DATA_DIR": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 1, refused.stderr
        assert f"cannot start the local endpoint on {host}" in refused.stderr
        assert "set RUNPOD_API_KEY" in refused.stderr and "Traceback" not in refused.stderr
