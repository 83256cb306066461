"""`python -m worker deploy` creates the RunPod template and Serverless endpoint through RunPod's REST API, changes
only what differs on a later run (nothing, when nothing does), passes secrets by reference and never prints
them, and turns bad input into one line each: against a loopback server with RunPod's documented shapes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from client.deploy import DEFAULT_GPUS, main
from core.settings import Settings
from tests.runpod_rest_server import RunPodRest

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


@pytest.fixture
def runpod() -> Iterator[RunPodRest]:
    volumes = [{"id": "vol0000aa", "name": "weights", "size": 150, "dataCenterId": "EU-RO-1"}]
    with RunPodRest(API_KEY, volumes=volumes) as server:
        yield server


def deploy(runpod: RunPodRest, capsys: pytest.CaptureFixture[str], *args: str, shell: dict[str, str] | None = None
           ) -> tuple[int, str, str]:  # fmt: skip
    code = main(["--api-url", runpod.url, *args], Settings.from_env(SHELL if shell is None else shell))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_first_deploy_creates_the_template_and_endpoint_with_the_documented_fields(
    runpod: RunPodRest, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--preload", '{"lora": true}')
    assert code == 0, err
    (template,) = runpod.templates.values()
    assert template["name"] == "infinitetalk-studio" and template["imageName"] == IMAGE
    assert template["isServerless"] is True and template["containerDiskInGb"] == 40
    assert template["env"] == {
        "STUDIO_EXECUTION_TIMEOUT_S": "3600",
        "INFINITETALK_PRELOAD": '{"lora": true}',
        "STUDIO_STORE": "s3",
        "S3_BUCKET": "studio-videos",
        "S3_REGION": "eu-central-1",
        "S3_ENDPOINT_URL": "https://s3.eu-central-1.amazonaws.com",
        "S3_ACCESS_KEY": "{{ RUNPOD_SECRET_s3_access_key }}",
        "S3_SECRET_KEY": "{{ RUNPOD_SECRET_s3_secret_key }}",
    }
    (endpoint,) = runpod.endpoints.values()
    assert endpoint["templateId"] == template["id"]
    assert endpoint["gpuTypeIds"] == list(DEFAULT_GPUS)
    assert (endpoint["workersMin"], endpoint["workersMax"], endpoint["idleTimeout"]) == (0, 2, 60)
    assert endpoint["flashboot"] is True
    assert endpoint["executionTimeoutMs"] == (3600 + 600) * 1000, "above the worker's own limit, so it ends first"
    assert [(c.method, c.path) for c in runpod.writes()] == [("POST", "/v1/templates"), ("POST", "/v1/endpoints")]
    assert f"Endpoint id: {endpoint['id']}" in out
    snippet = out.split("Secrets):\n\n", 1)[1]
    assert snippet.splitlines()[:2] == [
        f'RUNPOD_ENDPOINT_ID = "{endpoint["id"]}"',
        'RUNPOD_API_KEY = "<your RunPod API key>"',
    ]
    assert 'S3_BUCKET = "studio-videos"' in snippet and 'S3_SECRET_KEY = "<the S3 secret key>"' in snippet


def test_secrets_go_by_reference_and_are_never_sent_or_printed(
    runpod: RunPodRest, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy(runpod, capsys, "--image", IMAGE)
    assert code == 0, err
    sent = json.dumps([call.body for call in runpod.calls])
    for secret in (S3_SECRET, S3_ACCESS, API_KEY):
        assert secret not in sent and secret not in out + err
    assert all(call.authorization == f"Bearer {API_KEY}" for call in runpod.calls)


def test_a_second_deploy_changes_nothing_and_says_so(runpod: RunPodRest, capsys: pytest.CaptureFixture[str]) -> None:
    assert deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights")[0] == 0
    writes, versions = len(runpod.writes()), [e["version"] for e in runpod.endpoints.values()]
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights")
    assert code == 0, err
    assert len(runpod.writes()) == writes, "no write at all"
    assert [e["version"] for e in runpod.endpoints.values()] == versions
    template, endpoint = next(iter(runpod.templates)), next(iter(runpod.endpoints))
    assert out.splitlines()[:3] == [
        f"template infinitetalk-studio ({template}): unchanged",
        f"endpoint infinitetalk-studio ({endpoint}): unchanged",
        "Nothing changed.",
    ]


def test_a_later_deploy_updates_only_the_fields_that_differ(
    runpod: RunPodRest, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy(runpod, capsys, "--image", IMAGE)[0] == 0
    code, out, err = deploy(runpod, capsys, "--image", IMAGE.replace("1.0", "1.1"), "--gpu", "NVIDIA L40S",
                            "--gpu", "NVIDIA RTX A6000", "--workers-max", "4")  # fmt: skip
    assert code == 0, err
    patches = [(c.path, c.body) for c in runpod.writes() if c.method == "PATCH"]
    template_id, endpoint_id = next(iter(runpod.templates)), next(iter(runpod.endpoints))
    assert patches == [
        (f"/v1/templates/{template_id}", {"imageName": IMAGE.replace("1.0", "1.1")}),
        (f"/v1/endpoints/{endpoint_id}", {"gpuTypeIds": ["NVIDIA L40S", "NVIDIA RTX A6000"], "workersMax": 4}),
    ]
    assert f"template infinitetalk-studio ({template_id}): updated imageName" in out
    assert f"endpoint infinitetalk-studio ({endpoint_id}): updated gpuTypeIds, workersMax" in out
    assert runpod.endpoints[endpoint_id]["version"] == 2  # the template's change, then the endpoint's


def test_the_network_volume_is_found_by_name_and_pins_the_workers_to_its_data_center(
    runpod: RunPodRest, capsys: pytest.CaptureFixture[str]
) -> None:
    shell = {"RUNPOD_API_KEY": API_KEY}  # no S3: the videos go to the volume
    code, _, err = deploy(runpod, capsys, "--image", IMAGE, "--network-volume", "weights", shell=shell)
    assert code == 0, err
    (endpoint,) = runpod.endpoints.values()
    assert endpoint["networkVolumeId"] == "vol0000aa" and endpoint["dataCenterIds"] == ["EU-RO-1"]
    (template,) = runpod.templates.values()
    assert (
        template["env"]["STUDIO_STORE"] == "volume" and template["env"]["STUDIO_VOLUME_DIR"] == "/runpod-volume/outputs"
    )
    assert "S3_SECRET_KEY" not in template["env"]


def test_a_dry_run_sends_only_reads_and_prints_the_writes_redacted(
    runpod: RunPodRest, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = deploy(runpod, capsys, "--image", IMAGE, "--dry-run")
    assert code == 0, err
    assert runpod.calls and not runpod.writes()
    assert f"POST {runpod.url}/templates\nAuthorization: Bearer <redacted>\n" in out
    assert f"POST {runpod.url}/endpoints\nAuthorization: Bearer <redacted>\n" in out
    template_body = json.loads(
        out.split(f"POST {runpod.url}/templates\nAuthorization: Bearer <redacted>\n")[1].split("\n\n")[0]
    )
    assert (
        template_body["imageName"] == IMAGE
        and template_body["env"]["S3_SECRET_KEY"] == "{{ RUNPOD_SECRET_s3_secret_key }}"
    )
    assert API_KEY not in out and S3_SECRET not in out
    assert out.strip().endswith("Dry run: only the reads were sent; the writes above were not.")


@pytest.mark.parametrize(
    ("args", "shell", "line"),
    [
        (["--image", IMAGE, "--gpu", "NVIDIA H100"], None,
         "deploy: --gpu 'NVIDIA H100' is not a RunPod GPU type id; did you mean 'NVIDIA H100 80GB HBM3' or "
         "'NVIDIA H100 PCIe' or 'NVIDIA H100 NVL'?"),
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
    ],
    ids=["unknown-gpu", "missing-image", "no-api-key", "unknown-volume", "no-storage", "secret-as-env", "unread-env",
         "bad-preload"],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(
    runpod: RunPodRest, capsys: pytest.CaptureFixture[str], args: list[str], shell: dict[str, str] | None, line: str
) -> None:
    code, out, err = deploy(runpod, capsys, *args, shell=shell)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.strip().startswith(line), err
    assert not runpod.writes()


def test_a_pod_template_of_the_same_name_is_left_alone(runpod: RunPodRest, capsys: pytest.CaptureFixture[str]) -> None:
    runpod.templates["tplpod"] = {
        "id": "tplpod",
        "name": "infinitetalk-studio",
        "imageName": "x",
        "isServerless": False,
    }
    code, out, err = deploy(runpod, capsys, "--image", IMAGE)
    assert (code, out) == (2, "")
    assert err.strip().startswith("deploy: a Pod template is named 'infinitetalk-studio' (tplpod): ")
    assert not runpod.writes() and runpod.templates["tplpod"]["imageName"] == "x"


def test_a_refused_api_key_is_one_line_and_exit_1(runpod: RunPodRest, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = deploy(runpod, capsys, "--image", IMAGE, shell={**SHELL, "RUNPOD_API_KEY": "rpa_wrong"})
    assert code == 1
    assert err.strip() == "deploy: GET /templates: RunPod refused the API key (401); use a key with read/write access"


def test_the_command_line_runs_it(runpod: RunPodRest) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "deploy", "--api-url", runpod.url, "--image", IMAGE, "--dry-run"],
        cwd=Path(__file__).resolve().parent.parent, env={**os.environ, **SHELL}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Dry run" in done.stdout and not runpod.writes()
