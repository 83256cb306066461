"""`studio deploy` creates the RunPod Serverless endpoint through RunPod's REST API v2, changes only what
differs on a later run (nothing, when nothing does), passes secrets by reference and never prints them, picks GPUs
in the words of RunPod's catalog and refuses the ones the CUDA 12.1 image cannot run on, and turns bad input into
one line each: against a loopback v2 server that validates every request against RunPod's OpenAPI document (so a
field the document does not define fails every test here: the fixture checks nothing was refused)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.deploy import IMAGE_CUDA, main
from client.runpod_rest import RunPodRest
from core.settings import Settings
from tests.runpod_rest_server import CUDA_BLACKWELL, RunPodV2Server, gpu_type, validate
from tests.test_runpod_rest import Hostile

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "rpa_TESTKEY0123456789abcdef"
S3_SECRET = "s3-secret-value-never-sent-9f8e7d"
S3_ACCESS = "AKIAEXAMPLEACCESS01"
SHELL = {
    "RUNPOD_API_KEY": API_KEY,
    "S3_BUCKET": "studio-videos",
    "S3_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com",
    "S3_REGION": "eu-central-1",
    "S3_ACCESS_KEY": S3_ACCESS,
    "S3_SECRET_KEY": S3_SECRET,
}
IMAGE = "docker.io/you/infinitetalk-worker:1.0"
EIGHTY_GB = ["NVIDIA A100 80GB PCIe", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe",
             "NVIDIA H100 NVL", "NVIDIA H200"]  # fmt: skip
"""The default catalog's GPUs with 80 GB or more that the image runs on (B200 and RTX PRO 6000 are Blackwell)."""


@pytest.fixture
def runpod() -> Iterator[RunPodV2Server]:
    volumes = [{"id": "vol0000aa", "name": "weights", "size": 150, "dataCenter": "EU-RO-1", "type": "STANDARD"}]
    with RunPodV2Server(API_KEY, volumes=volumes) as server:
        yield server
        assert server.invalid == [], "deploy sent something RunPod's document does not define"


def deploy(runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str], *args: str, shell: dict[str, str] | None = None
           ) -> tuple[int, str, str]:  # fmt: skip
    code = main(["--api-url", runpod.url, *args], Settings.from_env(SHELL if shell is None else shell))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_first_deploy_creates_the_endpoint_with_the_documented_fields(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--preload", '{"lora": true}')
    assert code == 0, err
    (endpoint,) = runpod.endpoints.values()
    assert (endpoint["name"], endpoint["type"], endpoint["image"], endpoint["disk"]) == (
        "infinitetalk-studio", "QUEUE", IMAGE, 40)  # fmt: skip
    assert endpoint["env"] == {
        "STUDIO_EXECUTION_TIMEOUT_S": "3600",
        "INFINITETALK_PRELOAD": '{"lora": true}',
        "STUDIO_STORE": "s3",
        "S3_BUCKET": "studio-videos",
        "S3_REGION": "eu-central-1",
        "S3_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com",
        "S3_ACCESS_KEY": "{{ RUNPOD_SECRET_s3_access_key }}",
        "S3_SECRET_KEY": "{{ RUNPOD_SECRET_s3_secret_key }}",
    }
    assert endpoint["gpu"] == {"pools": ["AMPERE_80", "ADA_80_PRO", "HOPPER_141"], "count": 1,
                               "allowedCudaVersions": [], "minCudaVersion": "12.1"}  # fmt: skip
    assert endpoint["workers"] == {"min": 0, "max": 2, "idleTimeout": 60}
    assert endpoint["scaling"] == {"type": "QUEUE_DELAY", "queueDelay": 4}
    assert endpoint["flashboot"] == "FLASHBOOT", "v2's default is OFF, so deploy asks for it"
    assert endpoint["timeout"] == (3600 + 600) * 1000, "above the worker's own limit, so it ends first"
    assert [(c.method, c.path) for c in runpod.writes()] == [("POST", "/v2/serverless")], "no template in v2"
    assert out.splitlines()[0] == (
        "gpu: A100 PCIe, A100 SXM, H100 SXM, H100 PCIe, H100 NVL, H200 SXM (pools AMPERE_80, ADA_80_PRO, "
        "HOPPER_141), CUDA 12.1 or newer"
    )
    assert f"Endpoint id: {endpoint['id']}" in out
    snippet = out.split("Secrets):\n\n", 1)[1]
    assert snippet.splitlines()[:2] == [
        f'RUNPOD_ENDPOINT_ID = "{endpoint["id"]}"',
        'RUNPOD_API_KEY = "<your RunPod API key>"',
    ]
    assert 'S3_BUCKET = "studio-videos"' in snippet and 'S3_SECRET_KEY = "<the S3 secret key>"' in snippet


def test_secrets_go_by_reference_and_are_never_sent_or_printed(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy(runpod, capsys, "--image", IMAGE)
    assert code == 0, err
    sent = json.dumps([call.body for call in runpod.calls])
    for secret in (S3_SECRET, S3_ACCESS, API_KEY):
        assert secret not in sent and secret not in out + err
    assert all(call.authorization == f"Bearer {API_KEY}" for call in runpod.calls)


def test_a_second_deploy_changes_nothing_and_says_so(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights")[0] == 0
    (endpoint_id,) = runpod.endpoints
    writes, version = len(runpod.writes()), runpod.version(endpoint_id)
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights")
    assert code == 0, err
    assert len(runpod.writes()) == writes, "no write at all"
    assert runpod.version(endpoint_id) == version
    assert out.splitlines()[1:3] == [f"endpoint infinitetalk-studio ({endpoint_id}): unchanged", "Nothing changed."]


def test_a_later_deploy_patches_only_the_fields_that_differ_and_names_them(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(runpod, capsys, "--image", IMAGE)[0] == 0
    code, out, err = deploy(runpod, capsys, "--image", IMAGE.replace("1.0", "1.1"), "--gpu", "L40S",
                            "--gpu", "RTX A6000", "--workers-max", "4")  # fmt: skip
    assert code == 0, err
    (endpoint_id,) = runpod.endpoints
    patches = [(c.path, c.body) for c in runpod.writes() if c.method == "PATCH"]
    assert patches == [(f"/v2/serverless/{endpoint_id}", {
        "image": IMAGE.replace("1.0", "1.1"),
        "gpu": {"pools": ["ADA_48_PRO", "AMPERE_48"],
                "excludedTypes": ["NVIDIA A40", "NVIDIA L40", "NVIDIA RTX 6000 Ada Generation"]},
        "workers": {"max": 4},
    })]  # fmt: skip
    assert f"endpoint infinitetalk-studio ({endpoint_id}): updated image, gpu.pools, gpu.excludedTypes, " \
           "workers.max" in out  # fmt: skip
    assert runpod.version(endpoint_id) == 2, "one release for the one PATCH"
    assert runpod.endpoints[endpoint_id]["gpu"]["excludedTypes"] == [
        "NVIDIA A40", "NVIDIA L40", "NVIDIA RTX 6000 Ada Generation"]  # fmt: skip


def test_an_endpoint_with_a_cuda_set_gets_the_floor_and_the_set_cleared(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    """An endpoint made by hand (or from the Hub's list of CUDA versions) carries an exact set; the floor replaces
    it, and since the two are exclusive the set is cleared in the same PATCH."""
    assert deploy(runpod, capsys, "--image", IMAGE)[0] == 0
    (endpoint_id,) = runpod.endpoints
    RunPodRest(API_KEY, runpod.url).update_endpoint(
        endpoint_id, {"gpu": {"minCudaVersion": "", "allowedCudaVersions": ["12.4", "12.8"]}}
    )
    code, out, err = deploy(runpod, capsys, "--image", IMAGE)
    assert code == 0, err
    assert runpod.writes()[-1].body == {"gpu": {"minCudaVersion": "12.1", "allowedCudaVersions": []}}
    assert "updated gpu.minCudaVersion, gpu.allowedCudaVersions" in out
    assert runpod.endpoints[endpoint_id]["gpu"]["minCudaVersion"] == IMAGE_CUDA


@pytest.mark.parametrize(
    ("words", "pools", "excluded"),
    [
        (["H100"], ["ADA_80_PRO"], []),
        (["RTX 4090"], ["ADA_24"], []),
        (["H100 SXM"], ["ADA_80_PRO"], ["NVIDIA H100 NVL", "NVIDIA H100 PCIe"]),
        (["NVIDIA A100-SXM4-80GB"], ["AMPERE_80"], ["NVIDIA A100 80GB PCIe"]),
        (["AMPERE_80", "h200"], ["AMPERE_80", "HOPPER_141"], []),
    ],
    ids=["family", "consumer-name", "one-card", "type-id", "pool-id"],
)
def test_gpus_are_asked_for_in_the_catalogs_words_and_become_pools(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str], words: list[str], pools: list[str],
    excluded: list[str],
) -> None:  # fmt: skip
    code, _, err = deploy(runpod, capsys, "--image", IMAGE, *[arg for word in words for arg in ("--gpu", word)])
    assert code == 0, err
    (endpoint,) = runpod.endpoints.values()
    assert endpoint["gpu"]["pools"] == pools and endpoint["gpu"].get("excludedTypes", []) == excluded
    catalog_reads = [c.query for c in runpod.calls if c.path == "/v2/catalog/gpus"]
    assert catalog_reads == [{"include": ["AVAILABILITY"], "product": ["SERVERLESS"]}]


def test_a_pool_that_mixes_in_a_blackwell_card_keeps_the_rest_and_says_why(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    runpod.gpus += [gpu_type("NVIDIA RTX 5000 Ada Generation", "RTX 5000 Ada", "MIXED_32", 32, 1.2),
                    gpu_type("NVIDIA GeForce RTX 5080", "RTX 5080", "MIXED_32", 16, 1.2, CUDA_BLACKWELL)]  # fmt: skip
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--gpu", "MIXED_32")
    assert code == 0, err
    (endpoint,) = runpod.endpoints.values()
    assert endpoint["gpu"]["pools"] == ["MIXED_32"] and endpoint["gpu"]["excludedTypes"] == ["NVIDIA GeForce RTX 5080"]
    assert out.splitlines()[1] == (
        "gpu: left out: RTX 5080 is a Blackwell GPU, which needs CUDA 12.8 or newer; the worker image is built on "
        "CUDA 12.1 (Dockerfile.worker)"
    )


def test_a_gpu_whose_machines_offer_only_an_older_cuda_is_refused_and_so_is_a_catalog_without_80_gb(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    runpod.gpus = [gpu_type("Tesla V100-SXM2-16GB", "V100 SXM2", "VOLTA_16", 16, 0.5, ("11.8", "12.0"))]
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--gpu", "V100")
    assert (code, out, err.strip()) == (2, "", "deploy: --gpu 'V100': RunPod's machines with V100 SXM2 offer CUDA 12.0 "
                                        "at most; the image needs 12.1")  # fmt: skip
    code, out, err = deploy(runpod, capsys, "--image", IMAGE)
    assert (code, out, err.strip()) == (1, "", "deploy: RunPod's catalog lists no GPU with 80 GB or more that the "
                                        "worker image runs on; pass --gpu")  # fmt: skip
    assert not runpod.writes()


def test_the_cuda_deploy_asks_for_is_the_images() -> None:
    base = re.search(r"^ARG BASE_IMAGE=\S+-cuda(\d+\.\d+)-", (ROOT / "Dockerfile.worker").read_text(), re.MULTILINE)
    assert base and base.group(1) == IMAGE_CUDA


def test_the_network_volume_is_found_by_name_and_pins_the_workers_to_its_data_center(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    shell = {"RUNPOD_API_KEY": API_KEY}  # no S3: the videos go to the volume
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights", shell=shell)
    assert code == 0, err
    (endpoint,) = runpod.endpoints.values()
    assert endpoint["networkVolumes"] == ["vol0000aa"] and endpoint["dataCenterIds"] == ["EU-RO-1"]
    assert endpoint["env"]["STUDIO_STORE"] == "volume" and endpoint["env"]["STUDIO_VOLUME_DIR"] == VOLUME_DIR
    assert "S3_SECRET_KEY" not in endpoint["env"] and "warning" not in out


VOLUME_DIR = "/runpod-volume/outputs"


def test_a_volume_where_none_of_the_gpus_is_gets_a_warning(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    runpod.volumes.append({"id": "vol0000bb", "name": "far", "size": 150, "dataCenter": "AP-JP-1", "type": "STANDARD"})
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "vol0000bb")
    assert code == 0, err
    assert ("warning: RunPod lists none of these GPUs in AP-JP-1, the volume's data center: workers may not start "
            "there") in out  # fmt: skip


def _requests(out: str, base: str) -> list[tuple[str, str, dict[str, object]]]:
    found = re.findall(rf"^(POST|PATCH) {re.escape(base)}(\S+)\nAuthorization: Bearer <redacted>\n(.*?)\n\n", out,
                       re.MULTILINE | re.DOTALL)  # fmt: skip
    return [(method, path, json.loads(body)) for method, path, body in found]


def test_a_dry_run_sends_only_reads_and_prints_v2_requests_that_the_document_accepts(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights", "--dry-run")
    assert code == 0, err
    assert runpod.calls and not runpod.writes()
    ((method, path, body),) = _requests(out, runpod.url)
    assert (method, path) == ("POST", "/serverless")
    assert validate("CreateEndpointRequest", body) == []
    assert body["image"] == IMAGE and body["env"]["S3_SECRET_KEY"] == "{{ RUNPOD_SECRET_s3_secret_key }}"
    assert body["networkVolumes"] == ["vol0000aa"]
    assert API_KEY not in out and S3_SECRET not in out
    assert out.strip().endswith("Dry run: only the reads were sent; the writes above were not.")

    assert deploy(runpod, capsys, "--image", IMAGE)[0] == 0
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--gpu", "H200", "--workers-min", "1", "--dry-run")
    assert code == 0, err
    ((method, path, body),) = _requests(out, runpod.url)
    assert (method, path) == ("PATCH", f"/serverless/{next(iter(runpod.endpoints))}")
    assert body == {"gpu": {"pools": ["HOPPER_141"]}, "workers": {"min": 1}}
    assert validate("UpdateEndpointRequest", body) == []


@pytest.mark.parametrize(
    ("args", "shell", "line"),
    [
        (["--image", IMAGE, "--gpu", "H1000"], None,
         "deploy: --gpu 'H1000': no GPU type or serverless pool in RunPod's catalog has that name; did you mean "),
        (["--image", IMAGE, "--gpu", "RTX 5090"], None,
         "deploy: --gpu 'RTX 5090': RTX 5090 is a Blackwell GPU, which needs CUDA 12.8 or newer; the worker image is "
         "built on CUDA 12.1 (Dockerfile.worker)"),
        (["--image", IMAGE, "--gpu", "BLACKWELL_96"], None,
         "deploy: --gpu 'BLACKWELL_96': RTX PRO 6000 is a Blackwell GPU, which needs CUDA 12.8 or newer"),
        (["--image", IMAGE, "--gpu", "MI300X"], None,
         "deploy: --gpu 'MI300X': MI300X is an AMD GPU; the worker image is built on NVIDIA's CUDA"),
        ([], None, "deploy: --image: name the worker image you pushed, e.g. docker.io/you/infinitetalk-worker:1.0"),
        (["--image", IMAGE], {k: v for k, v in SHELL.items() if k != "RUNPOD_API_KEY"},
         "deploy: RUNPOD_API_KEY is not set: export a RunPod API key with read/write access "
         "(console: Settings, API Keys)"),
        (["--image", IMAGE, "--network-volume", "nope"], None,
         "deploy: --network-volume 'nope': no network volume has that id or name (yours: weights (vol0000aa))"),
        (["--image", IMAGE], {"RUNPOD_API_KEY": API_KEY},
         "deploy: no S3_BUCKET in this shell and no --network-volume: the worker's videos would have nowhere to go; "
         "export S3_BUCKET, S3_ENDPOINT_URL and S3_REGION (the dashboard's bucket) or pass --network-volume"),
        (["--image", IMAGE, "--env", "S3_SECRET_KEY=abc"], None,
         "deploy: --env S3_SECRET_KEY: a secret never goes into a template; pass --secret S3_SECRET_KEY=NAME"),
        (["--image", IMAGE, "--env", "STUDIO_COLOUR=blue"], None,
         "deploy: --env STUDIO_COLOUR: the worker does not read it (README.md's Configuration lists what it does)"),
        (["--image", IMAGE, "--preload", '{"speakers": 3}'], None, "deploy: --preload: INFINITETALK_PRELOAD: speakers"),
        (["--image", IMAGE, "--idle-timeout", "0"], None, "deploy: --idle-timeout 0: RunPod allows 1 to 3600 seconds"),
    ],
    ids=["unknown-gpu", "blackwell-card", "blackwell-pool", "amd", "missing-image", "no-api-key", "unknown-volume",
         "no-storage", "secret-as-env", "unread-env", "bad-preload", "idle-timeout"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str], args: list[str], shell: dict[str, str] | None, line: str
) -> None:
    code, out, err = deploy(runpod, capsys, *args, shell=shell)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.strip().startswith(line), err
    assert not runpod.writes()


def test_two_volumes_of_one_name_need_the_id(runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]) -> None:
    """v2's NetworkVolume names need not be unique: a name that fits two is refused, not guessed."""
    runpod.volumes.append(
        {"id": "vol0000cc", "name": "weights", "size": 50, "dataCenter": "US-KS-2", "type": "STANDARD"}
    )
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights")
    assert (code, out) == (2, "")
    assert err.strip() == ("deploy: --network-volume 'weights': 2 volumes have that name (vol0000aa, vol0000cc); "
                           "pass the id")  # fmt: skip
    assert deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "vol0000cc")[0] == 0


def test_a_refusal_is_its_detail_then_one_line_per_error_and_exit_1(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    runpod.refusals[("POST", "/v2/serverless")] = (400, "no capacity for the selected pools in EU-RO-1", [
        "$.gpu.pools: HOPPER_141 is not offered in EU-RO-1", "$.dataCenterIds[0]: \x1b[2Jcleared screen"])  # fmt: skip
    code, _, err = deploy(runpod, capsys, "--image", IMAGE)
    assert code == 1
    assert err.splitlines() == [
        "deploy: POST /v2/serverless: RunPod refused it (400 Bad Request): no capacity for the selected pools in "
        "EU-RO-1",
        "  $.gpu.pools: HOPPER_141 is not offered in EU-RO-1",
        "  $.dataCenterIds[0]: [2Jcleared screen",
    ]


def test_a_field_the_document_does_not_define_is_refused_by_name(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps deploy to the document: were it to send a v1 field, the loopback server refuses it as RunPod
    does, and the fixture's check would fail every other test."""
    import client.deploy

    real = client.deploy.wanted
    monkeypatch.setattr(client.deploy, "wanted", lambda *a: (p := real(*a), p.endpoint.update(gpuCount=1), p)[0])
    code, _, err = deploy(runpod, capsys, "--image", IMAGE)
    assert code == 1 and err.splitlines()[1:] == ["  $: additional properties 'gpuCount' not allowed"]
    assert runpod.invalid and not runpod.endpoints
    runpod.invalid.clear()


def test_a_refused_api_key_is_one_line_and_exit_1(runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = deploy(runpod, capsys, "--image", IMAGE, shell={**SHELL, "RUNPOD_API_KEY": "rpa_wrong"})
    assert code == 1
    assert err.strip() == ("deploy: GET /v2/catalog/gpus: RunPod refused the API key (401 invalid API key); use a "
                           "key with read/write access")  # fmt: skip


def test_an_endpoint_id_from_the_server_stays_one_path_segment(
    runpod: RunPodV2Server, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(runpod, capsys, "--image", IMAGE)[0] == 0
    (endpoint,) = runpod.endpoints.values()
    hostile_id = "../../admin?x="
    runpod.endpoints = {hostile_id: {**endpoint, "id": hostile_id}}
    code, _, err = deploy(runpod, capsys, "--image", IMAGE, "--workers-max", "3")
    assert code == 0, err
    assert [(c.method, c.path) for c in runpod.writes()][-1] == ("PATCH", "/v2/serverless/..%2F..%2Fadmin%3Fx%3D")


@pytest.mark.parametrize(
    ("status", "body", "headers", "line"),
    [
        (200, b"<html>down</html>", {"Content-Type": "text/html"},
         "deploy: GET /v2/catalog/gpus: RunPod's API answered 200 with text/html, not JSON: '<html>down</html>'"),
        (302, b"", {"Location": "http://localhost:9/v2/catalog/gpus"},
         "deploy: GET /v2/catalog/gpus: RunPod's API answered 302, a redirect to another host (localhost:9): not "
         "followed, since the API key would go with it; check --api-url"),
    ],
    ids=["html", "cross-host-redirect"],
)  # fmt: skip
def test_a_hostile_api_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], status: int, body: bytes, headers: dict[str, str], line: str
) -> None:
    hostile = Hostile(status, body, headers)
    try:
        code = main(["--api-url", hostile.url, "--image", IMAGE], Settings.from_env(SHELL))
        out, err = capsys.readouterr()
        assert (code, out, err.splitlines()) == (1, "", [line])
    finally:
        hostile.close()


def test_no_v1_path_is_left_in_the_product_or_its_docs() -> None:
    v1 = "rest.runpod" + ".io"
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    found = [
        name for name in listed
        if not name.startswith("tests/") and (ROOT / name).is_file()
        and v1 in (ROOT / name).read_text(errors="replace")
    ]  # fmt: skip
    assert found == []


def test_the_command_line_runs_it(runpod: RunPodV2Server) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "studio", "deploy", "--api-url", runpod.url, "--image", IMAGE, "--dry-run"],
        cwd=ROOT, env={**os.environ, **SHELL}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Dry run" in done.stdout and not runpod.writes()
