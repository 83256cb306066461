"""`python -m worker weights fetch` downloads exactly the files the engine checks for, from their public
repositories, resumes a file whose connection dropped, and checks sizes: against a loopback Hub (HF_ENDPOINT)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hf_hub_server import HubServer
from worker.engines.infinitetalk_weights import SOURCES
from worker.kokoro_tts import KOKORO_FILES, KOKORO_REPO
from worker.variants import DIT_SHARDS, LIGHTX2V_LORA
from worker.weights import human

ROOT = Path(__file__).resolve().parent.parent
WAN, WAV2VEC, TALK, LORA = (
    SOURCES[name].repo_id for name in ("Wan2.1-I2V-14B-480P", "chinese-wav2vec2-base", "InfiniteTalk", "lightx2v")
)


BIG, BIG_SIZE = DIT_SHARDS[2], 24 * 2**20
"""One shard bigger than huggingface_hub's 10 MiB download chunk: a dropped connection loses the chunk it was
reading, so a resume starts at the last whole chunk written (10 MiB here)."""
CHUNK = 10 * 2**20


def blob(name: str, size: int) -> bytes:
    """Distinct bytes for each file, so a file landing in the wrong place or out of order shows."""
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


TOKENIZER_FILES = {
    "google/umt5-xxl": ("special_tokens_map.json", "spiece.model", "tokenizer.json", "tokenizer_config.json"),
    "xlm-roberta-large": (
        "sentencepiece.bpe.model",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ),
}


def hub_repos() -> dict[tuple[str, str], dict[str, bytes]]:
    """The four repositories as the Hub holds them (tiny), including files the engine never reads."""
    wan = {name: blob(name, 3000) for name in DIT_SHARDS}
    wan[BIG] = blob(BIG, BIG_SIZE)
    wan |= {
        name: blob(name, 2500)
        for name in (
            "Wan2.1_VAE.pth",
            "models_t5_umt5-xxl-enc-bf16.pth",
            "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
        )
    }
    wan |= {f"{folder}/{name}": blob(folder + name, 300) for folder, names in TOKENIZER_FILES.items() for name in names}
    wan |= {
        "config.json": b'{"model_type": "i2v"}',
        "README.md": b"# Wan2.1",
        "examples/i2v_input.JPG": blob("jpg", 2000),
        "diffusion_pytorch_model.safetensors.index.json": b"{}",
    }
    talk = {f"{people}/infinitetalk.safetensors": blob(people, 2000) for people in ("single", "multi")}
    talk |= {
        f"quant_models/{stem}": blob(stem, 1200)
        for quant in ("int8", "fp8")
        for stem in (f"infinitetalk_single_{quant}.safetensors", f"infinitetalk_multi_{quant}.safetensors",
                     f"t5_{quant}.safetensors")
    }  # fmt: skip
    talk |= {
        f"quant_models/{stem}": b"{}"
        for quant in ("int8", "fp8")
        for stem in (f"infinitetalk_single_{quant}.json", f"infinitetalk_multi_{quant}.json", f"t5_map_{quant}.json")
    }
    talk["README.md"] = b"# InfiniteTalk"
    wav2vec_main = {"config.json": b"{}", "preprocessor_config.json": b"{}", "pytorch_model.bin": blob("bin", 2200)}
    return {
        (WAN, "main"): wan,
        (WAV2VEC, "main"): wav2vec_main,
        (WAV2VEC, "refs/pr/1"): {**wav2vec_main, "model.safetensors": blob("wav2vec", 2100)},
        (TALK, "main"): talk,
        (LORA, "main"): {LIGHTX2V_LORA: blob("lora", 1800), "other_lora.safetensors": blob("other", 1500)},
        (KOKORO_REPO, "main"): {
            name: blob(name, 1100) for name in (*KOKORO_FILES, "voices/zf_xiaobei.pt", "README.md")
        },
    }


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer(hub_repos()) as server:
        yield server


def fetch(hub: HubServer, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf-home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_ENABLE_HF_TRANSFER": "0",
        "HF_HUB_OFFLINE": "0",
    }
    env.pop("HF_TOKEN", None)
    return subprocess.run(
        [sys.executable, "-m", "worker", "weights", "fetch", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def files_under(root: Path) -> set[str]:
    """Every file fetch left, the Hub's own bookkeeping (.cache/huggingface) aside."""
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file() and ".cache" not in path.parts}


def test_fetch_downloads_exactly_the_files_the_engine_checks_and_nothing_else(hub: HubServer, tmp_path: Path) -> None:
    models = tmp_path / "models"
    done = fetch(hub, tmp_path, "--to", str(models), "--variant", "base,lora,kokoro")
    assert done.returncode == 0, done.stdout + done.stderr
    wan = {f"Wan2.1-I2V-14B-480P/{name}" for name in (*DIT_SHARDS, "Wan2.1_VAE.pth", "config.json",
           "models_t5_umt5-xxl-enc-bf16.pth", "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth")}  # fmt: skip
    wan |= {f"Wan2.1-I2V-14B-480P/{folder}/{name}" for folder, names in TOKENIZER_FILES.items() for name in names}
    expected = wan | {
        "chinese-wav2vec2-base/config.json",
        "chinese-wav2vec2-base/preprocessor_config.json",
        "chinese-wav2vec2-base/model.safetensors",
        "InfiniteTalk/single/infinitetalk.safetensors",
        f"lightx2v/{LIGHTX2V_LORA}",
        *(f"Kokoro-82M/{name}" for name in KOKORO_FILES),
    }
    assert files_under(models) == expected
    repos = hub_repos()
    assert (models / "chinese-wav2vec2-base/model.safetensors").read_bytes() == repos[(WAV2VEC, "refs/pr/1")][
        "model.safetensors"
    ]
    for name in DIT_SHARDS:
        assert (models / "Wan2.1-I2V-14B-480P" / name).read_bytes() == repos[(WAN, "main")][name]
    total = sum((models / name).stat().st_size for name in expected)
    assert done.stdout.splitlines()[0] == (
        f"{len(expected)} files, {human(total)} for base, lora, kokoro under {models}: "
        f"0 already there, {len(expected)} to download ({human(total)})"
    )
    assert done.stdout.strip().endswith("Nothing missing for base, lora, kokoro.")


def test_a_second_fetch_downloads_nothing_and_a_later_variant_only_its_own_files(
    hub: HubServer, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    assert fetch(hub, tmp_path, "--to", str(models), "--variant", "base").returncode == 0
    downloads = len([r for r in hub.requests if r.method == "GET" and "/api/" not in r.path])
    again = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert again.returncode == 0, again.stderr
    count = len(files_under(models))
    assert f"{count} already there, 0 to download" in again.stdout.splitlines()[0]
    assert len([r for r in hub.requests if r.method == "GET" and "/api/" not in r.path]) == downloads
    fp8 = fetch(hub, tmp_path, "--to", str(models), "--variant", "fp8")
    assert fp8.returncode == 0, fp8.stderr
    assert "4 to download" in fp8.stdout.splitlines()[0]
    assert {p for p in files_under(models) if "quant_models" in p} == {
        f"InfiniteTalk/quant_models/{name}" for name in ("infinitetalk_single_fp8.safetensors",
        "infinitetalk_single_fp8.json", "t5_fp8.safetensors", "t5_map_fp8.json")
    }  # fmt: skip


def test_a_connection_dropped_mid_file_resumes_from_where_it_stopped(hub: HubServer, tmp_path: Path) -> None:
    hub.cut_once[BIG] = 15 * 2**20
    models = tmp_path / "models"
    done = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "connection dropped" in done.stderr and "resuming (try 2 of 3)" in done.stderr
    assert [r.range for r in hub.gets(BIG)] == [None, f"bytes={CHUNK}-"]
    assert (models / "Wan2.1-I2V-14B-480P" / BIG).read_bytes() == hub_repos()[(WAN, "main")][BIG]


def test_an_interrupted_fetch_is_resumed_by_running_it_again(hub: HubServer, tmp_path: Path) -> None:
    shard = BIG
    hub.cut_once[shard], hub.fail_after_cut = 21 * 2**20, True
    models = tmp_path / "models"
    failed = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert failed.returncode == 1
    error = failed.stderr.strip().splitlines()[-1]
    assert error.startswith(f"weights fetch: {WAN}/{shard}: ") and error.endswith(
        "run the same command again to resume"
    )
    assert not (models / "Wan2.1-I2V-14B-480P" / shard).exists()
    hub.fail_after_cut = False
    again = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert again.returncode == 0, again.stdout + again.stderr
    assert hub.gets(shard)[-1].range == f"bytes={2 * CHUNK}-"
    assert (models / "Wan2.1-I2V-14B-480P" / shard).read_bytes() == hub_repos()[(WAN, "main")][shard]


def test_a_file_of_the_wrong_size_is_fetched_again(hub: HubServer, tmp_path: Path) -> None:
    models = tmp_path / "models"
    assert fetch(hub, tmp_path, "--to", str(models), "--variant", "base").returncode == 0
    vae = models / "Wan2.1-I2V-14B-480P" / "Wan2.1_VAE.pth"
    vae.write_bytes(vae.read_bytes()[:100])
    again = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert again.returncode == 0, again.stderr
    assert "1 to download" in again.stdout.splitlines()[0]
    assert vae.read_bytes() == hub_repos()[(WAN, "main")]["Wan2.1_VAE.pth"]


def test_a_file_the_repository_lacks_is_one_line_naming_it(hub: HubServer, tmp_path: Path) -> None:
    del hub.repos[(LORA, "main")][LIGHTX2V_LORA]
    done = fetch(hub, tmp_path, "--to", str(tmp_path / "models"), "--variant", "lora")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"weights fetch: {LORA} at main has no {LIGHTX2V_LORA} (for {tmp_path / 'models' / 'lightx2v' / LIGHTX2V_LORA})"
    )


def test_an_unknown_variant_is_one_line_listing_the_known_ones(hub: HubServer, tmp_path: Path) -> None:
    done = fetch(hub, tmp_path, "--to", str(tmp_path / "models"), "--variant", "base,fp16")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("weights fetch: --variant: 'fp16' is not one of base, multi, lora")
    assert not hub.requests


@pytest.mark.parametrize(
    "hostile",
    [
        "google/umt5-xxl/../../../../ESCAPED.txt",
        "google/umt5-xxl/./../../ESCAPED.txt",
        "google/umt5-xxl//ESCAPED.txt",
        "google/umt5-xxl/..",
    ],
)
def test_a_listing_path_that_leaves_its_folder_is_refused_and_nothing_is_written(
    hub: HubServer, tmp_path: Path, hostile: str
) -> None:
    """A hostile HF_ENDPOINT (a mirror, a proxy) lists a path with `..` under a wanted folder: huggingface_hub
    would write it where it points, above --to, so the whole fetch is refused before any file is downloaded."""
    hub.repos[(WAN, "main")][hostile] = b"escaped"
    models = tmp_path / "deep" / "er" / "models"
    done = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.strip() == (
        f"weights fetch: {WAN} at main lists {hostile!r}, a path that leaves its folder "
        f"{models / 'Wan2.1-I2V-14B-480P'}: refusing to fetch anything from it; check HF_ENDPOINT (a mirror or "
        "proxy that rewrites listings is not the Hub)"
    )
    assert not [r for r in hub.requests if "/resolve/" in r.path or "/cdn/" in r.path]
    written = {p for p in tmp_path.rglob("*") if p.is_file() and "hf-home" not in p.parts}
    assert written == set(), written


def test_a_listed_path_through_a_symbolic_link_out_of_the_folder_is_refused(hub: HubServer, tmp_path: Path) -> None:
    """A folder under --to that links elsewhere: the resolved path decides, not the spelling."""
    models, outside = tmp_path / "models", tmp_path / "outside"
    tokenizer = models / "Wan2.1-I2V-14B-480P" / "google" / "umt5-xxl"
    tokenizer.mkdir(parents=True)
    outside.mkdir()
    (tokenizer / "escape").symlink_to(outside)
    hub.repos[(WAN, "main")]["google/umt5-xxl/escape/ESCAPED.txt"] = b"escaped"
    done = fetch(hub, tmp_path, "--to", str(models), "--variant", "base")
    assert done.returncode == 1
    assert "'google/umt5-xxl/escape/ESCAPED.txt', a path that leaves its folder" in done.stderr
    assert list(outside.iterdir()) == []
