"""`studio deploy`: create or update the RunPod Serverless endpoint that runs the worker.

    RUNPOD_API_KEY=... S3_BUCKET=... studio deploy --image docker.io/you/infinitetalk-worker:1.0
    (options: --name infinitetalk-studio, --gpu H100 --gpu "RTX 4090" ..., --network-volume NAME_OR_ID, --dry-run)

It speaks RunPod's REST API v2 (https://api.runpod.io/v2, through client/runpod_rest.py) and is idempotent by
name: the first run creates the endpoint, a later run PATCHes only the fields that differ (and names them), and a
run with nothing to change sends no write at all. In v2 an endpoint carries its container settings (image, env,
disk) itself, and a template is only a snapshot applied once at creation ("later template edits do not affect the
endpoint", RunPod's document says), so deploy keeps no template: one would be a second copy that changes nothing.

GPUs are asked for in the words RunPod's catalog uses (`--gpu H100`, `--gpu "RTX 4090"`, `--gpu "A100 SXM"`) or
as a serverless pool id (`--gpu AMPERE_80`), and resolved through GET /v2/catalog/gpus into the pools an endpoint
takes, less the cards of those pools that were not asked for (`excludedTypes`). The worker image is CUDA 12.1
(IMAGE_CUDA): the endpoint asks for machines with that CUDA or newer, and GPUs the image cannot run on (Blackwell,
whose kernels need a newer CUDA; AMD; none in a serverless pool) are refused with the reason.

The endpoint carries the env vars the worker reads: the storage settings from this shell's environment
(S3_BUCKET, S3_ENDPOINT_URL, S3_REGION), with the S3 keys passed by reference to RunPod secrets
(`{{ RUNPOD_SECRET_s3_access_key }}`), never by value. At the end it prints the endpoint id and the lines the
dashboard's `.streamlit/secrets.toml` needs. `--dry-run` sends only the reads and prints each write it would send,
the API key redacted.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

from client.runpod_rest import REST_API, GpuType, NetworkVolume, RunPodRest, RunPodRestError, clean, segment
from core.contract import JobError
from core.settings import Settings
from worker.variants import PRELOAD_VAR, WeightPaths, preload_variant

DEFAULT_NAME = "infinitetalk-studio"
IMAGE_CUDA = "12.1"
"""The CUDA the worker image is built on (Dockerfile.worker's BASE_IMAGE, pytorch/pytorch:2.4.1-cuda12.1-...;
tests/test_deploy.py checks the two agree): the endpoint's `gpu.minCudaVersion`."""
NEWER_CUDA: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (re.compile(r"blackwell|\bb[23]00\b|\brtx 50[5-9]0\b", re.IGNORECASE), "Blackwell", "12.8"),
)
"""GPU families whose kernels need a newer CUDA than IMAGE_CUDA, found by the catalog's id or name: (pattern,
family, the first CUDA that runs on it). Blackwell (B200, B300, RTX PRO 6000 Blackwell, RTX 50x0) needs 12.8."""
DEFAULT_MIN_MEMORY_GB = 80
"""Without --gpu: every GPU type of the catalog with this much memory that the image runs on. 80 GB runs every
setting, 720p and two speakers included (docs/gpu.md)."""
DEFAULT_JOB_TIMEOUT_S = 3600
"""The worker's own limit (STUDIO_EXECUTION_TIMEOUT_S): a long streaming job at 40 steps runs for many minutes."""
TIMEOUT_MARGIN_S = 600
"""The endpoint's timeout is the worker's limit plus this: a job that needs another model variant rebuilds the
pipeline inside the job, and encoding and upload follow generation; the worker ends a job E_TIMEOUT itself first."""
CONTAINER_DISK_GB = 40
QUEUE_DELAY_S = 4
"""The scaler: another worker starts when a job has waited this long in the queue."""
VOLUME_OUTPUTS = "/runpod-volume/outputs"
SECRET_VARS = {"S3_ACCESS_KEY": "s3_access_key", "S3_SECRET_KEY": "s3_secret_key"}
"""Env vars the endpoint passes by reference to a RunPod secret (default secret names; --secret renames)."""
ENDPOINT_FIELDS = ("image", "args", "disk", "env", "gpu", "workers", "scaling", "dataCenterIds", "networkVolumes",
                   "timeout", "flashboot")  # fmt: skip
"""The endpoint fields deploy sets and compares (CreateEndpointRequest and UpdateEndpointRequest both take them)."""


class DeployError(Exception):
    """The message for the user (a refusal from RunPod may add one line per error); `code` is the exit status
    (2: bad input, 1: RunPod refused or was unreachable)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def secret_ref(name: str) -> str:
    """How RunPod names a secret in an env var: it substitutes the value when a worker starts."""
    return "{{ RUNPOD_SECRET_" + name + " }}"


# ------------------------------------------------------------------------------------------------------------
# What to deploy, from the command line and this shell's settings.
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Wanted:
    """The endpoint as deploy wants it, before the GPUs and the volume are looked up."""

    name: str
    endpoint: dict[str, Any]
    gpus: list[str] | None = None
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
    """The endpoint's body, less GPUs and volume; bad input is a DeployError with code 2."""
    if not args.image:
        raise DeployError("--image: name the worker image you pushed, e.g. docker.io/you/infinitetalk-worker:1.0",
                          code=2)  # fmt: skip
    if not 0 <= args.workers_min <= args.workers_max:
        raise DeployError(f"--workers-min {args.workers_min} must be between 0 and --workers-max {args.workers_max}",
                          code=2)  # fmt: skip
    if not 1 <= args.idle_timeout <= 3600:
        raise DeployError(f"--idle-timeout {args.idle_timeout}: RunPod allows 1 to 3600 seconds", code=2)
    if args.container_disk_gb < 1:
        raise DeployError(f"--container-disk-gb {args.container_disk_gb}: at least 1 GB", code=2)
    if args.job_timeout_s < 1:
        raise DeployError(f"--job-timeout-s {args.job_timeout_s}: at least 1 second", code=2)
    gpus = [gpu.strip() for gpu in args.gpu or []]
    if any(not gpu for gpu in gpus):
        raise DeployError("--gpu '': name a GPU (H100, 'RTX 4090') or a pool id (AMPERE_80)", code=2)
    env, s3 = template_env(args, settings)
    endpoint = {
        "name": args.name,
        "type": "QUEUE",
        "image": args.image,
        "args": "",
        "disk": args.container_disk_gb,
        "env": env,
        "workers": {"min": args.workers_min, "max": args.workers_max, "idleTimeout": args.idle_timeout},
        "scaling": {"type": "QUEUE_DELAY", "queueDelay": QUEUE_DELAY_S},
        "timeout": (args.job_timeout_s + TIMEOUT_MARGIN_S) * 1000,
        "flashboot": "OFF" if args.no_flashboot else "FLASHBOOT",
    }
    return Wanted(args.name, endpoint, list(dict.fromkeys(gpus)) or None, args.network_volume, s3)


# ------------------------------------------------------------------------------------------------------------
# GPUs: words → catalog types → pools.
# ------------------------------------------------------------------------------------------------------------


def _cuda(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _label(gpu: GpuType) -> str:
    """A GPU type's name as printed (catalog text is quoted, so it is cleaned first)."""
    return clean(gpu.name, 60)


def unfit(gpu: GpuType) -> str | None:
    """Why the worker image cannot run on this GPU type, or None when it can."""
    if gpu.manufacturer != "NVIDIA":
        return f"{_label(gpu)} is an {clean(gpu.manufacturer, 20)} GPU; the worker image is built on NVIDIA's CUDA"
    for pattern, family, cuda in NEWER_CUDA:
        if pattern.search(gpu.id) or pattern.search(gpu.name):
            return (f"{_label(gpu)} is a {family} GPU, which needs CUDA {cuda} or newer; the worker image is built on "
                    f"CUDA {IMAGE_CUDA} (Dockerfile.worker)")  # fmt: skip
    offered = [c.version for c in gpu.cuda_versions if re.fullmatch(r"\d+\.\d+", c.version)]
    if offered and max(map(_cuda, offered)) < _cuda(IMAGE_CUDA):
        top = max(offered, key=_cuda)
        return f"RunPod's machines with {_label(gpu)} offer CUDA {top} at most; the image needs {IMAGE_CUDA}"
    if not gpu.pool:
        return f"{_label(gpu)} is in no serverless GPU pool (RunPod offers it for pods only)"
    return None


def _tokens(text: str) -> set[str]:
    return set(re.split(r"[\s_-]+", text.lower())) - {""}


def matching(word: str, catalog: list[GpuType]) -> list[GpuType]:
    """The catalog's GPU types a word names: a pool id (all its types), a type's id or name, or else every type
    whose id or name holds all the word's parts (`H100` → H100 SXM, H100 PCIe, H100 NVL)."""
    lower = word.lower()
    found = [g for g in catalog if g.pool and g.pool.lower() == lower]
    found = found or [g for g in catalog if lower in (g.id.lower(), g.name.lower())]
    return found or [g for g in catalog if _tokens(word) <= _tokens(g.id) | _tokens(g.name)]


@dataclass
class GpuChoice:
    """The endpoint's `gpu`: the pools of the chosen types, less the other types of those pools."""

    chosen: list[GpuType]
    left_out: list[str]
    """Why each type a word named was left out."""
    catalog: list[GpuType]

    @property
    def pools(self) -> list[str]:
        return list(dict.fromkeys(g.pool for g in self.chosen if g.pool))

    @property
    def excluded(self) -> list[str]:
        ids = {g.id for g in self.chosen}
        return sorted({g.id for g in self.catalog if g.pool in self.pools and g.id not in ids})

    def body(self) -> dict[str, Any]:
        gpu: dict[str, Any] = {"pools": self.pools, "count": 1, "minCudaVersion": IMAGE_CUDA}
        if self.excluded:
            gpu["excludedTypes"] = self.excluded
        return gpu

    def summary(self) -> str:
        names = ", ".join(_label(g) for g in self.chosen)
        pools = ", ".join(clean(pool, 40) for pool in self.pools)
        return f"gpu: {names} (pools {pools}), CUDA {IMAGE_CUDA} or newer"


def choose_gpus(words: list[str] | None, catalog: list[GpuType]) -> GpuChoice:
    """The GPU types for --gpu's words (each must name at least one the image runs on), or by default every type
    with DEFAULT_MIN_MEMORY_GB or more that it runs on. Bad words are a DeployError with code 2."""
    if not words:
        large = [g for g in catalog if g.memory >= DEFAULT_MIN_MEMORY_GB and unfit(g) is None]
        if not large:
            raise DeployError(f"RunPod's catalog lists no GPU with {DEFAULT_MIN_MEMORY_GB} GB or more that the "
                              "worker image runs on; pass --gpu")  # fmt: skip
        return GpuChoice(large, [], catalog)
    chosen: list[GpuType] = []
    left_out: list[str] = []
    for word in words:
        named = matching(word, catalog)
        if not named:
            names = {n.lower(): n for g in catalog for n in (g.name, g.id, g.pool or "") if n}
            close = difflib.get_close_matches(word.lower(), names, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(repr(names[c]) for c in close)}?" if close else ""
            raise DeployError(f"--gpu {word!r}: no GPU type or serverless pool in RunPod's catalog has that name"
                              f"{hint}", code=2)  # fmt: skip
        reasons = {g.id: unfit(g) for g in named}
        fit = [g for g in named if reasons[g.id] is None]
        if not fit:
            raise DeployError(f"--gpu {word!r}: {reasons[named[0].id]}", code=2)
        chosen += [g for g in fit if g not in chosen]
        left_out += [reason for reason in dict.fromkeys(reasons.values()) if reason and reason not in left_out]
    return GpuChoice(chosen, left_out, catalog)


# ------------------------------------------------------------------------------------------------------------
# RunPod's REST API, with --dry-run.
# ------------------------------------------------------------------------------------------------------------


class Rest:
    """RunPod's REST API v2: reads are always sent; writes are printed instead under --dry-run."""

    def __init__(self, client: RunPodRest, *, dry_run: bool, out: TextIO) -> None:
        self.client, self.dry_run, self.out = client, dry_run, out

    def _print(self, method: str, path: str, body: dict[str, Any]) -> None:
        request = f"{method} {self.client.base}{path}\nAuthorization: Bearer <redacted>"
        print(f"{request}\n{json.dumps(body, indent=2)}\n", file=self.out)

    def create(self, body: dict[str, Any]) -> str | None:
        """POST /v2/serverless; the new endpoint's id (None in a dry run)."""
        if self.dry_run:
            self._print("POST", "/serverless", body)
            return None
        return self.client.create_endpoint(body).id

    def update(self, endpoint_id: str, body: dict[str, Any]) -> None:
        """PATCH /v2/serverless/{id} with only the fields that change."""
        if self.dry_run:
            self._print("PATCH", f"/serverless/{segment(endpoint_id)}", body)
            return
        self.client.update_endpoint(endpoint_id, body)


def _same(key: str, have: Any, want: Any) -> bool:
    """A field as compared: lists of ids in any order; `args` absent or empty alike; FlashBoot's priority mode
    counts as on."""
    if key in ("dataCenterIds", "networkVolumes", "pools", "excludedTypes"):
        return sorted(have or []) == sorted(want or [])
    if key == "args":
        return (have or "") == (want or "")
    if key == "flashboot" and want == "FLASHBOOT":
        return have in ("FLASHBOOT", "PRIORITY_FLASHBOOT")
    return bool(have == want)


def changes(existing: dict[str, Any], desired: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The PATCH body for the desired fields that differ from what RunPod reports, and their names. `gpu` and
    `workers` change field by field; `pools` is sent with `excludedTypes` (sending pools alone clears them), and a
    CUDA set the endpoint carries is cleared with `allowedCudaVersions: []` when the floor is set, since the two
    are exclusive."""
    patch: dict[str, Any] = {}
    names: list[str] = []
    for key in ENDPOINT_FIELDS:
        if key not in desired:
            continue
        want, have = desired[key], existing.get(key)
        if key == "workers":
            have = have or {}
            sub = {k: v for k, v in want.items() if not _same(k, have.get(k), v)}
            if sub:
                patch[key] = sub
                names += [f"workers.{k}" for k in sub]
        elif key == "gpu":
            have = have or {}
            gpu: dict[str, Any] = {}
            if not (_same("pools", have.get("pools"), want["pools"])
                    and _same("excludedTypes", have.get("excludedTypes"), want.get("excludedTypes"))):  # fmt: skip
                gpu["pools"] = want["pools"]
                names.append("gpu.pools")
                if want.get("excludedTypes"):
                    gpu["excludedTypes"] = want["excludedTypes"]
                if not _same("excludedTypes", have.get("excludedTypes"), want.get("excludedTypes")):
                    names.append("gpu.excludedTypes")
            for sub_key in ("count", "minCudaVersion"):
                if have.get(sub_key) != want[sub_key]:
                    gpu[sub_key] = want[sub_key]
                    names.append(f"gpu.{sub_key}")
            if have.get("allowedCudaVersions"):
                gpu["allowedCudaVersions"] = []
                names.append("gpu.allowedCudaVersions")
            if gpu:
                patch[key] = gpu
        elif not _same(key, have, want):
            patch[key] = want
            names.append(key)
    return patch, names


def one_named(items: list[Any], name: str, kind: str, names: tuple[str, ...]) -> Any:
    """The one item with this name (None when there is none); several is an error naming them."""
    found = [item for item in items if item.name in names]
    if len(found) > 1:
        ids = ", ".join(clean(item.id, 40) for item in found)
        raise DeployError(
            f"{len(found)} {kind}s are named {name!r} ({ids}): delete the extra ones or pass another --name"
        )
    return found[0] if found else None


def find_volume(volumes: list[NetworkVolume], wanted_volume: str) -> NetworkVolume:
    """The network volume with this id, or else the one with this name (names need not be unique in v2)."""
    by_id = [v for v in volumes if v.id == wanted_volume]
    by_name = [v for v in volumes if v.name == wanted_volume]
    if by_id or len(by_name) == 1:
        return (by_id or by_name)[0]
    if by_name:
        ids = ", ".join(clean(v.id, 40) for v in by_name)
        raise DeployError(f"--network-volume {wanted_volume!r}: {len(by_name)} volumes have that name ({ids}); "
                          "pass the id", code=2)  # fmt: skip
    have = ", ".join(f"{clean(v.name, 60)} ({clean(v.id, 40)})" for v in volumes) or "none"
    raise DeployError(
        f"--network-volume {wanted_volume!r}: no network volume has that id or name (yours: {have})", code=2
    )


def deploy(plan: Wanted, rest: Rest, out: TextIO) -> tuple[str | None, bool]:
    """Create or update the endpoint; returns its id (None in a dry run that would create it) and whether anything
    changed. Every read comes first, so bad input is refused before anything is written."""
    client = rest.client
    body = dict(plan.endpoint)
    choice = choose_gpus(plan.gpus, client.gpus(availability=True))
    body["gpu"] = choice.body()
    if plan.volume:
        volume = find_volume(client.network_volumes(), plan.volume)
        body["networkVolumes"] = [volume.id]
        body["dataCenterIds"] = [volume.data_center]  # workers run where the volume is
    endpoints = client.endpoints()
    print(choice.summary(), file=out)
    for reason in choice.left_out:
        print(f"gpu: left out: {reason}", file=out)
    if plan.volume:
        centers = {dc.id for g in choice.chosen for dc in g.data_centers}
        if centers and volume.data_center not in centers:
            print(f"warning: RunPod lists none of these GPUs in {volume.data_center}, the volume's data center: "
                  "workers may not start there", file=out)  # fmt: skip
    # RunPod's older GraphQL API turned FlashBoot on with a " -fb" suffix on the name: such an endpoint is found too.
    endpoint = one_named(endpoints, plan.name, "endpoint", (plan.name, f"{plan.name} -fb"))
    if endpoint is None:
        created = rest.create(body)
        endpoint_id = clean(created, 80) if created else None
        print(f"endpoint {plan.name} ({endpoint_id or '<new endpoint id>'}): created", file=out)
        return endpoint_id, True
    endpoint_id = endpoint.id
    update, names = changes(endpoint.model_dump(by_alias=True), body)
    if update:
        rest.update(endpoint_id, update)
        print(f"endpoint {plan.name} ({clean(endpoint_id, 80)}): updated {', '.join(names)}", file=out)
        return endpoint_id, True
    print(f"endpoint {plan.name} ({clean(endpoint_id, 80)}): unchanged", file=out)
    return endpoint_id, False


def secrets_snippet(endpoint_id: str, plan: Wanted) -> str:
    """The lines the dashboard's .streamlit/secrets.toml needs (dashboard/config.py's names); secrets as
    placeholders, since they are never printed."""
    lines = [f"RUNPOD_ENDPOINT_ID = {json.dumps(endpoint_id)}", 'RUNPOD_API_KEY = "<your RunPod API key>"']
    if plan.s3:
        lines += [f"{key} = {json.dumps(value)}" for key, value in sorted(plan.s3.items())]
        lines += ['S3_ACCESS_KEY = "<the S3 access key id>"', 'S3_SECRET_KEY = "<the S3 secret key>"']
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(
        prog="studio deploy", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parse.add_argument("--image", help="the worker image you pushed (Dockerfile.worker), e.g. docker.io/you/worker:1.0")
    parse.add_argument("--name", default=DEFAULT_NAME, help=f"the endpoint's name (default {DEFAULT_NAME})")
    parse.add_argument("--gpu", action="append",
                       help="a GPU as RunPod's catalog names it (H100, 'RTX 4090', 'A100 SXM') or a serverless pool "
                       "id (AMPERE_80); repeat for more (default: every GPU with "
                       f"{DEFAULT_MIN_MEMORY_GB} GB or more that the image runs on)")  # fmt: skip
    parse.add_argument("--workers-min", type=int, default=0, help="workers always running, billed (default 0)")
    parse.add_argument("--workers-max", type=int, default=2, help="the most workers at once (default 2)")
    parse.add_argument("--idle-timeout", type=int, default=60, help="seconds a worker waits for the next job (60)")
    parse.add_argument("--no-flashboot", action="store_true", help="turn FlashBoot off (on by default)")
    parse.add_argument(
        "--job-timeout-s",
        type=int,
        default=DEFAULT_JOB_TIMEOUT_S,
        help=f"the worker's limit per job, STUDIO_EXECUTION_TIMEOUT_S (default {DEFAULT_JOB_TIMEOUT_S}); "
        f"the endpoint's timeout is {TIMEOUT_MARGIN_S} s more",
    )
    parse.add_argument("--network-volume", help="the network volume (id or name) holding the weights")
    parse.add_argument("--container-disk-gb", type=int, default=CONTAINER_DISK_GB)
    parse.add_argument("--preload", help=f"{PRELOAD_VAR}: the variant loaded at cold start, e.g. '{{\"lora\": true}}'")
    parse.add_argument("--env", action="append", help="another env var the worker reads, NAME=VALUE (repeatable)")
    parse.add_argument("--secret", action="append",
                       help="pass env var NAME from the RunPod secret SECRET: NAME=SECRET (S3_ACCESS_KEY and "
                       "S3_SECRET_KEY default to the secrets s3_access_key and s3_secret_key)")  # fmt: skip
    parse.add_argument("--api-url", default=REST_API, help=f"RunPod's REST API v2 (default {REST_API})")
    parse.add_argument("--dry-run", action="store_true", help="send only the reads; print the writes instead")
    return parse


def main(argv: list[str] | None = None, settings: Settings | None = None) -> int:
    """Deploy; one line on stderr and exit 2 for bad input, 1 when RunPod refuses (its detail, then one line per
    error) or cannot be reached."""
    args = parser().parse_args(argv)
    settings = settings or Settings.from_env()
    out = sys.stdout
    try:
        plan = wanted(args, settings)
        if not settings.api_key:
            raise DeployError("RUNPOD_API_KEY is not set: export a RunPod API key with read/write access "
                              "(console: Settings, API Keys)", code=2)  # fmt: skip
        rest = Rest(RunPodRest(settings.api_key, args.api_url), dry_run=args.dry_run, out=out)
        try:
            endpoint_id, changed = deploy(plan, rest, out)
        except RunPodRestError as error:
            raise DeployError(str(error)) from None
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
        names = ", ".join(plan.endpoint["env"][var] for var in SECRET_VARS)
        print(f"\nThe worker reads the S3 keys from RunPod secrets ({names}): create them in RunPod's console "
              "(Secrets) if you have not.", file=out)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
