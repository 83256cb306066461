"""`python -m worker deploy`: create or update the RunPod template and Serverless endpoint that run the worker.

    RUNPOD_API_KEY=... S3_BUCKET=... python -m worker deploy --image docker.io/you/infinitetalk-worker:1.0
    (options: --name infinitetalk-studio, --gpu "NVIDIA H100 80GB HBM3" ..., --network-volume NAME_OR_ID, --dry-run)

It speaks RunPod's documented REST API (https://rest.runpod.io/v1: /templates, /endpoints, /networkvolumes, as
RunPod's OpenAPI document describes them) and is idempotent by name: the first run creates the template and the
endpoint, a later run changes only the fields that differ (and says which), and a run with nothing to change sends
no write at all. The template carries the env vars the worker reads: the storage settings from this shell's
environment (S3_BUCKET, S3_ENDPOINT_URL, S3_REGION), with the S3 keys passed by reference to RunPod secrets
(`{{ RUNPOD_SECRET_s3_access_key }}`), never by value. At the end it prints the endpoint id and the lines the
dashboard's `.streamlit/secrets.toml` needs. `--dry-run` sends only the reads and prints each write it would send,
the API key redacted.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from core.contract import JobError
from core.settings import Settings
from worker.engines.infinitetalk_args import PRELOAD_VAR, WeightPaths, preload_variant

REST_API = "https://rest.runpod.io/v1"
DEFAULT_NAME = "infinitetalk-studio"
GPU_TYPE_IDS = (
    "NVIDIA GeForce RTX 4090", "NVIDIA A40", "NVIDIA RTX A5000", "NVIDIA GeForce RTX 5090", "NVIDIA H100 80GB HBM3",
    "NVIDIA GeForce RTX 3090", "NVIDIA RTX A4500", "NVIDIA L40S", "NVIDIA H200", "NVIDIA L4",
    "NVIDIA RTX 6000 Ada Generation", "NVIDIA A100-SXM4-80GB", "NVIDIA RTX 4000 Ada Generation", "NVIDIA RTX A6000",
    "NVIDIA A100 80GB PCIe", "NVIDIA RTX 2000 Ada Generation", "NVIDIA RTX A4000",
    "NVIDIA RTX PRO 6000 Blackwell Server Edition", "NVIDIA H100 PCIe", "NVIDIA H100 NVL", "NVIDIA L40", "NVIDIA B200",
    "NVIDIA GeForce RTX 3080 Ti", "NVIDIA RTX PRO 6000 Blackwell Workstation Edition", "NVIDIA GeForce RTX 3080",
    "NVIDIA GeForce RTX 3070", "AMD Instinct MI300X OAM", "NVIDIA GeForce RTX 4080 SUPER", "Tesla V100-PCIE-16GB",
    "Tesla V100-SXM2-32GB", "NVIDIA RTX 5000 Ada Generation", "NVIDIA GeForce RTX 4070 Ti",
    "NVIDIA RTX 4000 SFF Ada Generation", "NVIDIA GeForce RTX 3090 Ti", "NVIDIA RTX A2000", "NVIDIA GeForce RTX 4080",
    "NVIDIA A30", "NVIDIA GeForce RTX 5080", "Tesla V100-FHHL-16GB", "NVIDIA H200 NVL", "Tesla V100-SXM2-16GB",
    "NVIDIA RTX PRO 6000 Blackwell Max-Q Workstation Edition", "Tesla V100-PCIE-32GB", "Tesla T4",
)  # fmt: skip
"""`gpuTypeIds` values RunPod's REST API accepts (EndpointCreateInput in its OpenAPI document)."""
DEFAULT_GPUS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe", "NVIDIA H200")
"""80 GB and up, in order of preference: every setting runs there, 720p and two speakers included (docs/gpu.md)."""
DEFAULT_JOB_TIMEOUT_S = 3600
"""The worker's own limit (STUDIO_EXECUTION_TIMEOUT_S): a long streaming job at 40 steps runs for many minutes."""
TIMEOUT_MARGIN_S = 600
"""RunPod's executionTimeout is the worker's limit plus this: a job that needs another model variant rebuilds the
pipeline inside the job, and encoding and upload follow generation; the worker ends a job E_TIMEOUT itself first."""
CONTAINER_DISK_GB = 40
VOLUME_OUTPUTS = "/runpod-volume/outputs"
SECRET_VARS = {"S3_ACCESS_KEY": "s3_access_key", "S3_SECRET_KEY": "s3_secret_key"}
"""Env vars the template passes by reference to a RunPod secret (default secret names; --secret renames)."""
TEMPLATE_FIELDS = ("imageName", "env", "containerDiskInGb", "volumeInGb", "dockerStartCmd", "ports")
"""The template fields deploy sets and compares (all in TemplateUpdateInput)."""
ENDPOINT_FIELDS = (
    "templateId",
    "gpuTypeIds",
    "gpuCount",
    "workersMin",
    "workersMax",
    "idleTimeout",
    "executionTimeoutMs",
    "scalerType",
    "scalerValue",
    "networkVolumeId",
    "dataCenterIds",
    "flashboot",
)
"""The endpoint fields deploy sets and compares, where the API reports them (flashboot it may not)."""


class DeployError(Exception):
    """One line for the user; `code` is the exit status (2: bad input, 1: RunPod refused or was unreachable)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def secret_ref(name: str) -> str:
    """How a RunPod template names a secret: RunPod substitutes its value when a worker starts."""
    return "{{ RUNPOD_SECRET_" + name + " }}"


# ------------------------------------------------------------------------------------------------------------
# What to deploy, from the command line and this shell's settings.
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Wanted:
    """The template and endpoint as deploy wants them."""

    name: str
    template: dict[str, Any]
    endpoint: dict[str, Any]
    volume: str | None = None
    s3: dict[str, str] = field(default_factory=dict)


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    pairs = {}
    for value in values or []:
        key, sep, rest = value.partition("=")
        if not sep or not key or not rest:
            raise DeployError(f"{option} {value!r}: write it as NAME=VALUE", code=2)
        pairs[key] = rest
    return pairs


def worker_reads(key: str, value: str) -> bool:
    """Whether the worker's Settings change when this env var is set (so the worker reads it)."""
    return Settings.from_env({key: value}) != Settings.from_env({})


def template_env(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, str], dict[str, str]]:
    """The worker's env vars for the template, and the S3 settings the dashboard needs too."""
    env = {"STUDIO_EXECUTION_TIMEOUT_S": str(args.job_timeout_s)}
    if args.preload:
        try:
            preload_variant(args.preload, WeightPaths(), (WeightPaths().ckpt_dir.parent,))
        except JobError as error:
            raise DeployError(f"--preload: {error.message}", code=2) from None
        env[PRELOAD_VAR] = args.preload
    secrets = {**SECRET_VARS, **_pairs(args.secret, "--secret")}
    for var in secrets:
        if not worker_reads(var, "x-probe"):
            raise DeployError(f"--secret {var}: the worker does not read it (README.md's Configuration)", code=2)
    s3: dict[str, str] = {}
    if settings.s3_bucket:
        s3 = {"S3_BUCKET": settings.s3_bucket, "S3_REGION": settings.s3_region}
        if settings.s3_endpoint_url:
            s3["S3_ENDPOINT_URL"] = settings.s3_endpoint_url
        env |= {"STUDIO_STORE": "s3", **s3}
        env |= {var: secret_ref(name) for var, name in secrets.items() if var in SECRET_VARS}
    elif args.network_volume:
        env |= {"STUDIO_STORE": "volume", "STUDIO_VOLUME_DIR": VOLUME_OUTPUTS}
    else:
        raise DeployError(
            "no S3_BUCKET in this shell and no --network-volume: the worker's videos would have nowhere to go; "
            "export S3_BUCKET, S3_ENDPOINT_URL and S3_REGION (the dashboard's bucket) or pass --network-volume",
            code=2,
        )
    env |= {var: secret_ref(name) for var, name in secrets.items() if var not in SECRET_VARS}
    for key, value in _pairs(args.env, "--env").items():
        if key in SECRET_VARS or key == "RUNPOD_API_KEY":
            raise DeployError(f"--env {key}: a secret never goes into a template; pass --secret {key}=NAME", code=2)
        if not worker_reads(key, value):
            raise DeployError(
                f"--env {key}: the worker does not read it (README.md's Configuration lists what it does)", code=2
            )
        env[key] = value
    return env, s3


def wanted(args: argparse.Namespace, settings: Settings) -> Wanted:
    """The template and endpoint bodies; bad input is a DeployError with code 2."""
    if not args.image:
        raise DeployError("--image: name the worker image you pushed, e.g. docker.io/you/infinitetalk-worker:1.0",
                          code=2)  # fmt: skip
    gpus = list(dict.fromkeys(args.gpu or DEFAULT_GPUS))
    for gpu in gpus:
        if gpu not in GPU_TYPE_IDS:
            close = [known for known in GPU_TYPE_IDS if gpu.lower() in known.lower()]
            close = (close or difflib.get_close_matches(gpu, GPU_TYPE_IDS, n=3, cutoff=0.4))[:3]
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise DeployError(f"--gpu {gpu!r} is not a RunPod GPU type id{hint}", code=2)
    if not 0 <= args.workers_min <= args.workers_max:
        raise DeployError(f"--workers-min {args.workers_min} must be between 0 and --workers-max {args.workers_max}",
                          code=2)  # fmt: skip
    if not 1 <= args.idle_timeout <= 3600:
        raise DeployError(f"--idle-timeout {args.idle_timeout}: RunPod allows 1 to 3600 seconds", code=2)
    env, s3 = template_env(args, settings)
    template = {
        "name": args.name,
        "imageName": args.image,
        "isServerless": True,
        "containerDiskInGb": args.container_disk_gb,
        "volumeInGb": 0,
        "dockerStartCmd": [],
        "ports": [],
        "env": env,
    }
    endpoint = {
        "name": args.name,
        "gpuTypeIds": gpus,
        "gpuCount": 1,
        "workersMin": args.workers_min,
        "workersMax": args.workers_max,
        "idleTimeout": args.idle_timeout,
        "flashboot": not args.no_flashboot,
        "executionTimeoutMs": (args.job_timeout_s + TIMEOUT_MARGIN_S) * 1000,
        "scalerType": "QUEUE_DELAY",
        "scalerValue": 4,
    }
    return Wanted(args.name, template, endpoint, args.network_volume, s3)


# ------------------------------------------------------------------------------------------------------------
# RunPod's REST API.
# ------------------------------------------------------------------------------------------------------------


class Rest:
    """RunPod's REST API: reads are always sent; writes are printed instead under --dry-run."""

    def __init__(self, base: str, api_key: str, *, dry_run: bool, out: TextIO) -> None:
        self.base, self.api_key, self.dry_run, self.out = base.rstrip("/"), api_key, dry_run, out

    def _send(self, method: str, path: str, *, params: dict[str, str] | None = None, body: Any = None) -> Any:
        import requests

        try:
            response = requests.request(
                method, self.base + path, params=params, json=body, timeout=60,
                headers={"Authorization": f"Bearer {self.api_key}", "Accept": "application/json"},
            )  # fmt: skip
        except requests.RequestException as error:
            raise DeployError(f"{method} {self.base}{path}: {type(error).__name__}: {error}") from None
        if response.status_code == 401:
            raise DeployError(f"{method} {path}: RunPod refused the API key (401); use a key with read/write access")
        if not response.ok:
            detail = response.text.strip().splitlines()[0][:300] if response.text.strip() else response.reason
            raise DeployError(f"{method} {path}: {response.status_code} {detail}")
        return response.json() if response.content else None

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        return self._send("GET", path, params=params)

    def write(self, method: str, path: str, body: dict[str, Any]) -> Any:
        if self.dry_run:
            print(f"{method} {self.base}{path}\nAuthorization: Bearer <redacted>\n{json.dumps(body, indent=2)}\n",
                  file=self.out)  # fmt: skip
            return None
        return self._send(method, path, body=body)


def _normal(key: str, value: Any) -> Any:
    """A field as compared: RunPod may report dataCenterIds as one comma-separated string."""
    if key == "dataCenterIds" and isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if key == "dataCenterIds" and isinstance(value, list):
        return sorted(value)
    return value


def changes(existing: dict[str, Any], desired: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """The desired fields that differ from what RunPod reports; a field it does not report is left alone."""
    return {
        key: desired[key]
        for key in keys
        if key in desired and key in existing and _normal(key, existing[key]) != _normal(key, desired[key])
    }


def one_named(items: list[dict[str, Any]], name: str, kind: str, names: tuple[str, ...]) -> dict[str, Any] | None:
    """The one item with this name (None when there is none); several is an error naming them."""
    found = [item for item in items if item.get("name") in names]
    if len(found) > 1:
        ids = ", ".join(str(item.get("id")) for item in found)
        raise DeployError(
            f"{len(found)} {kind}s are named {name!r} ({ids}): delete the extra ones or pass another --name"
        )
    return found[0] if found else None


def find_volume(rest: Rest, wanted_volume: str) -> dict[str, Any]:
    """The network volume with this id or name."""
    volumes = rest.get("/networkvolumes") or []
    for volume in volumes:
        if wanted_volume in (volume.get("id"), volume.get("name")):
            return volume
    have = ", ".join(f"{v.get('name')} ({v.get('id')})" for v in volumes) or "none"
    raise DeployError(
        f"--network-volume {wanted_volume!r}: no network volume has that id or name (yours: {have})", code=2
    )


def deploy(plan: Wanted, rest: Rest, out: TextIO) -> tuple[str | None, bool]:
    """Create or update the template, then the endpoint; returns the endpoint id (None in a dry run that would
    create it) and whether anything changed."""
    changed = False
    endpoint_body = dict(plan.endpoint)
    if plan.volume:
        volume = find_volume(rest, plan.volume)
        endpoint_body["networkVolumeId"] = volume["id"]
        if volume.get("dataCenterId"):
            endpoint_body["dataCenterIds"] = [volume["dataCenterId"]]  # workers run where the volume is

    templates = rest.get("/templates", {"includeEndpointBoundTemplates": "true"}) or []
    template = one_named(templates, plan.name, "template", (plan.name,))
    if template is None:
        created = rest.write("POST", "/templates", plan.template)
        template_id = created["id"] if created else "<new template id>"
        print(f"template {plan.name} ({template_id}): created", file=out)
        changed = True
    elif template.get("isServerless") is False:
        raise DeployError(
            f"a Pod template is named {plan.name!r} ({template['id']}): RunPod keeps template names unique, so pass "
            "another --name for the Serverless one",
            code=2,
        )
    else:
        template_id = template["id"]
        update = changes(template, plan.template, TEMPLATE_FIELDS)
        if update:
            rest.write("PATCH", f"/templates/{template_id}", update)
            print(f"template {plan.name} ({template_id}): updated {', '.join(update)}", file=out)
            changed = True
        else:
            print(f"template {plan.name} ({template_id}): unchanged", file=out)

    endpoint_body["templateId"] = template_id
    endpoints = rest.get("/endpoints") or []
    # RunPod's older GraphQL API turned FlashBoot on with a " -fb" suffix on the name: such an endpoint is found too.
    endpoint = one_named(endpoints, plan.name, "endpoint", (plan.name, f"{plan.name} -fb"))
    if endpoint is None:
        created = rest.write("POST", "/endpoints", endpoint_body)
        endpoint_id = created["id"] if created else None
        print(f"endpoint {plan.name} ({endpoint_id or '<new endpoint id>'}): created", file=out)
        return endpoint_id, True
    endpoint_id = endpoint["id"]
    update = changes(endpoint, endpoint_body, ENDPOINT_FIELDS)
    if update:
        rest.write("PATCH", f"/endpoints/{endpoint_id}", update)
        print(f"endpoint {plan.name} ({endpoint_id}): updated {', '.join(update)}", file=out)
        return endpoint_id, True
    print(f"endpoint {plan.name} ({endpoint_id}): unchanged", file=out)
    return endpoint_id, changed


def secrets_snippet(endpoint_id: str, plan: Wanted) -> str:
    """The lines the dashboard's .streamlit/secrets.toml needs (dashboard/config.py's names); secrets as
    placeholders, since they are never printed."""
    lines = [f'RUNPOD_ENDPOINT_ID = "{endpoint_id}"', 'RUNPOD_API_KEY = "<your RunPod API key>"']
    if plan.s3:
        lines += [f'{key} = "{value}"' for key, value in sorted(plan.s3.items())]
        lines += ['S3_ACCESS_KEY = "<the S3 access key id>"', 'S3_SECRET_KEY = "<the S3 secret key>"']
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="python -m worker deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parse.add_argument("--image", help="the worker image you pushed (Dockerfile.worker), e.g. docker.io/you/worker:1.0")
    parse.add_argument(
        "--name", default=DEFAULT_NAME, help=f"the template's and endpoint's name (default {DEFAULT_NAME})"
    )
    parse.add_argument("--gpu", action="append", help="a RunPod GPU type id, most preferred first; repeat for more "
                       f"(default: {', '.join(DEFAULT_GPUS)})")  # fmt: skip
    parse.add_argument("--workers-min", type=int, default=0, help="workers always running, billed (default 0)")
    parse.add_argument("--workers-max", type=int, default=2, help="the most workers at once (default 2)")
    parse.add_argument("--idle-timeout", type=int, default=60, help="seconds a worker waits for the next job (60)")
    parse.add_argument("--no-flashboot", action="store_true", help="turn FlashBoot off (on by default)")
    parse.add_argument(
        "--job-timeout-s",
        type=int,
        default=DEFAULT_JOB_TIMEOUT_S,
        help=f"the worker's limit per job, STUDIO_EXECUTION_TIMEOUT_S (default {DEFAULT_JOB_TIMEOUT_S}); "
        f"RunPod's executionTimeout is {TIMEOUT_MARGIN_S} s more",
    )
    parse.add_argument("--network-volume", help="the network volume (id or name) holding the weights")
    parse.add_argument("--container-disk-gb", type=int, default=CONTAINER_DISK_GB)
    parse.add_argument("--preload", help=f"{PRELOAD_VAR}: the variant loaded at cold start, e.g. '{{\"lora\": true}}'")
    parse.add_argument("--env", action="append", help="another env var the worker reads, NAME=VALUE (repeatable)")
    parse.add_argument("--secret", action="append",
                       help="pass env var NAME from the RunPod secret SECRET: NAME=SECRET (S3_ACCESS_KEY and "
                       "S3_SECRET_KEY default to the secrets s3_access_key and s3_secret_key)")  # fmt: skip
    parse.add_argument("--api-url", default=REST_API, help=f"RunPod's REST API (default {REST_API})")
    parse.add_argument("--dry-run", action="store_true", help="send only the reads; print the writes instead")
    return parse


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    """Deploy; one line on stderr and exit 2 for bad input, 1 when RunPod refuses or cannot be reached."""
    args = parser().parse_args(argv)
    settings = settings or Settings.from_env()
    out = sys.stdout
    try:
        plan = wanted(args, settings)
        if not settings.api_key:
            raise DeployError("RUNPOD_API_KEY is not set: export a RunPod API key with read/write access "
                              "(console: Settings, API Keys)", code=2)  # fmt: skip
        rest = Rest(args.api_url, settings.api_key, dry_run=args.dry_run, out=out)
        endpoint_id, changed = deploy(plan, rest, out)
    except DeployError as error:
        message = str(error)
        for secret in settings.secrets():
            message = message.replace(secret, "<redacted>")
        print(f"deploy: {message}", file=sys.stderr)
        return error.code
    if args.dry_run:
        print("Dry run: only the reads were sent; the writes above were not.", file=out)
        return 0
    if not changed:
        print("Nothing changed.", file=out)
    print(f"\nEndpoint id: {endpoint_id}\n\nThe dashboard's .streamlit/secrets.toml (or Community Cloud's Secrets):\n",
          file=out)  # fmt: skip
    print(secrets_snippet(str(endpoint_id), plan), file=out)
    if plan.s3:
        names = ", ".join(plan.template["env"][var] for var in SECRET_VARS)
        print(f"\nThe worker reads the S3 keys from RunPod secrets ({names}): create them in RunPod's console "
              "(Secrets) if you have not.", file=out)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
