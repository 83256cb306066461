"""`python -m worker bench-gpu`: InfiniteTalk's speed and memory at its real sizes, with random weights.

Compute does not depend on the weights' values, so the 14B model at its real shapes (Wan2.1-I2V-14B's DiT,
umT5-XXL, CLIP ViT-H/14, the Wan VAE, wav2vec2-base) with random weights takes the time and memory the real
weights would, and needs no download. Every model is built by InfiniteTalk's own classes directly on the device
(no files are read; `RandomWeightsEngine._build`), and each setting then runs as a job through the worker's own
path: `run_job` with the InfiniteTalk engine's embed and generate, the encoder and the publish. Per setting one
JSON line says: seconds of compute per second of video, seconds per sampling step, peak GPU memory, and the time
outside sampling (embedding, T5/CLIP/VAE encode, VAE decode, video encode) as a share, with the GPU's name,
driver and CUDA version. The lines are the speed table client/estimate.py reads (docs/estimates.md).

    python -m worker bench-gpu               every setting at full size, 40 steps where the setting says 40
    python -m worker bench-gpu --quick       the main settings with a few steps each, extrapolated to the
                                             setting's steps; stops starting settings past --budget-s (420 s)
    python -m worker bench-gpu --scale tiny  the same code on the selftest's tiny sizes: seconds on a CPU

What it cannot say: how the real weights look, and TeaCache's real skip rate (it skips by how much the model's
output changes, which random weights do not reproduce). The lightx2v LoRA is merged into the DiT's weights when
the model is built, so it changes no shape and no per-step cost: the 4-step setting is the base model at 4 steps
with the LoRA's guidance (text scale 1: two model passes a step instead of three). fp8 and int8 quantise every
linear layer of the DiT and T5 with optimum-quanto, as InfiniteTalk's quant_models are loaded.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from core.contract import FPS, Stage
from core.settings import Settings
from worker.engines.infinitetalk import InfiniteTalkEngine, free_gpu_memory, import_infinitetalk, is_out_of_memory
from worker.engines.infinitetalk_args import INFINITETALK_COMMIT, TASK
from worker.variants import ENV_VARS, Variant, WeightPaths

BENCH = "infinitetalk-bench-gpu"
"""Every line's `bench` field: how client/estimate.py recognises a speed table line."""
FULL_DIT = {
    "model_type": "i2v", "dim": 5120, "ffn_dim": 13824, "freq_dim": 256, "in_dim": 36, "num_heads": 40,
    "num_layers": 40, "out_dim": 16, "text_len": 512, "eps": 1e-06,
}  # fmt: skip
"""Wan2.1-I2V-14B-480P's config.json (InfiniteTalk's audio adapter takes WanModel's defaults)."""
WAV2VEC_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}
"""chinese-wav2vec2-base's transformer (the convolutional feature encoder is wav2vec2's default)."""
QUICK_BUDGET_S = 400.0
"""--quick starts no setting its predicted time would take past this (a whole run stays under 8 minutes)."""
KERNELS = ("sageattention", "flash-attn-3", "flash-attn-2", "sdpa")
"""The attention kernels InfiniteTalk's DiT can run, in the order it prefers them when they import."""


@dataclass(frozen=True)
class Setting:
    """One measured configuration: the job's parameters that change the compute, and the attention kernel."""

    name: str
    size: str = "infinitetalk-480"
    steps: int = 40
    lora: bool = False
    teacache: bool = False
    quant: str | None = None
    vram0: bool = False
    speakers: int = 1
    attention: str | None = None
    """None: the kernel InfiniteTalk picks by itself (the image's best)."""
    quick_steps: int | None = 2
    """Steps a --quick run samples (None: not in --quick); the per-step time is extrapolated to `steps`."""

    def job(self, media: Any, frame_num: int, steps: int) -> dict[str, Any]:
        """The job this setting runs: one clip of frame_num frames from a long enough speech."""
        job: dict[str, Any] = {
            "prompt": "a woman speaks warmly to the camera in a bright studio",
            "cond_video": str(media.portrait),
            "cond_audio": {"person1": str(media.speech_1)},
            "mode": "clip",
            "size": self.size,
            "frame_num": frame_num,
            "sample_steps": steps,
            "base_seed": 42,
            "use_teacache": self.teacache,
            "quant": self.quant,
            "lora": self.lora,
        }
        if self.lora:  # lightx2v's distilled guidance, as docs/gpu.md recommends with the LoRA
            job.update(sample_text_guide_scale=1.0, sample_audio_guide_scale=2.0)
        if self.vram0:
            job["num_persistent_param_in_dit"] = 0
        if self.speakers == 2:
            job.update(
                cond_video=str(media.two_people),
                cond_audio={"person1": str(media.speech_1), "person2": str(media.speech_2)},
                audio_type="para",
            )
        return job


SETTINGS: tuple[Setting, ...] = (
    Setting("480p-40step-cfg"),
    Setting("720p-40step-cfg", size="infinitetalk-720"),
    Setting("480p-sdpa", attention="sdpa"),
    Setting("480p-flash-attn-2", attention="flash-attn-2"),
    Setting("480p-flash-attn-3", attention="flash-attn-3"),
    Setting("480p-sageattention", attention="sageattention"),
    Setting("480p-teacache", teacache=True, quick_steps=None),
    Setting("480p-lightx2v-4step", steps=4, lora=True, quick_steps=4),
    Setting("720p-lightx2v-4step", size="infinitetalk-720", steps=4, lora=True, quick_steps=None),
    Setting("480p-two-speakers", speakers=2),
    Setting("480p-fp8", quant="fp8"),
    Setting("480p-int8", quant="int8"),
    Setting("480p-num-persistent-0", vram0=True),
)
"""Grouped by the model variant they need, so the model is rebuilt as few times as possible."""
QUICK_ORDER = (
    "480p-40step-cfg", "480p-lightx2v-4step", "720p-40step-cfg", "480p-fp8", "480p-two-speakers", "480p-int8",
    "480p-sdpa", "480p-flash-attn-2", "480p-flash-attn-3", "480p-sageattention", "480p-num-persistent-0",
)  # fmt: skip
"""--quick's order: what the estimate and the GPU choice need most first, so the time budget drops the rest."""


# ------------------------------------------------------------------------------------------------------------
# The runtime: InfiniteTalk imported, at full or tiny sizes, and its attention kernels.
# ------------------------------------------------------------------------------------------------------------


@dataclass
class Runtime:
    """InfiniteTalk imported for the bench, on one device, and which attention kernels it can run."""

    device: str
    scale: str
    modules: Any
    stood_in: list[str]
    kernels: dict[str, str]
    """Each kernel's state: `available`, or why it cannot run here."""
    default_kernel: str
    originals: dict[str, Any] = field(default_factory=dict)


def prepare(scale: str, src: Path, *, meta: bool = False) -> Runtime:
    """Import InfiniteTalk from src on CUDA (or on the CPU through the selftest's cpu.py, tiny scale only); with
    `meta`, for building the models on PyTorch's meta device (shapes and dtypes, no memory) on any machine."""
    import torch

    from worker.selftest import cpu, tiny

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and scale != "tiny" and not meta:
        raise SystemExit("bench-gpu: no CUDA GPU is visible; --scale full needs one (--scale tiny runs on a CPU)")
    if device == "cpu":
        os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")
        torch._dynamo.config.disable = True
        cpu.install()
        stood_in = ["xfuser", "xformers"]
    else:
        stood_in = cpu.install_kernel_standins()
    modules = import_infinitetalk(src)
    attention = sys.modules["wan.modules.attention"]
    originals = {"flash_attention": attention.flash_attention}
    if device == "cpu" and not meta:
        cpu.adapt(modules)  # SDPA for flash_attention and float32 dtypes: the CPU cannot run the others
    if scale == "tiny":
        tiny.use_tiny_sizes()
    kernels = _kernel_states(device)
    default = next((name for name in KERNELS if kernels[name] == "available"), "sdpa")
    return Runtime("meta" if meta else device, scale, modules, stood_in, kernels, default, originals)


def _imports(name: str) -> str | None:
    """None when a module imports, else why not."""
    try:
        importlib.import_module(name)
    except Exception as error:
        return f"does not import here ({type(error).__name__}: {error})"[:200]
    return None


def _kernel_states(device: str) -> dict[str, str]:
    states = {"sdpa": "available"}
    for kernel, module in (
        ("sageattention", "sageattention"), ("flash-attn-3", "flash_attn_interface"), ("flash-attn-2", "flash_attn"),
    ):  # fmt: skip
        problem = "needs a CUDA GPU" if device != "cuda" else _imports(module)
        states[kernel] = problem or "available"
    return states


def use_kernel(runtime: Runtime, kernel: str) -> None:
    """Make InfiniteTalk's DiT (and its CLIP, through flash_attention) run one attention kernel."""
    from worker.selftest import cpu

    model: Any = sys.modules["wan.modules.multitalk_model"]  # InfiniteTalk's module globals, set from outside
    attention: Any = sys.modules["wan.modules.attention"]
    model.USE_SAGEATTN = kernel == "sageattention"
    if kernel == "sageattention":
        model.sageattn = importlib.import_module("sageattention").sageattn
    if kernel in ("flash-attn-3", "flash-attn-2"):
        attention.FLASH_ATTN_3_AVAILABLE = kernel == "flash-attn-3"
        if kernel == "flash-attn-3":
            attention.flash_attn_interface = importlib.import_module("flash_attn_interface")
        attention.FLASH_ATTN_2_AVAILABLE = runtime.kernels["flash-attn-2"] == "available"
        if attention.FLASH_ATTN_2_AVAILABLE:
            attention.flash_attn = importlib.import_module("flash_attn")
    if kernel == "sdpa" or runtime.device == "cpu":
        cpu.use_attention_standin()
    else:
        for name in ("wan.modules.attention", "wan.modules.clip", "wan.modules.model", "wan.modules.multitalk_model"):
            module = sys.modules.get(name)
            if module is not None and hasattr(module, "flash_attention"):
                setattr(module, "flash_attention", runtime.originals["flash_attention"])  # noqa: B010


# ------------------------------------------------------------------------------------------------------------
# Random weights on the device.
# ------------------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _building(device: Any, dtype: Any) -> Iterator[None]:
    """Tensors created inside are on `device` with `dtype` by default: models are born there, at their size."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            yield
    finally:
        torch.set_default_dtype(previous)


def _quantise(module: Any, quant: str) -> None:
    from optimum.quanto import freeze, qfloat8, qint8, quantize

    quantize(module, weights={"int8": qint8, "fp8": qfloat8}[quant])
    freeze(module)
    module.requires_grad_(False)  # as InfiniteTalkPipeline leaves its requantized model


def save_tokenizers(folder: Path) -> dict[str, Path]:
    """The two tokenizers InfiniteTalk loads, as small word-level ones: T5 pads every prompt to its 512 tokens
    and CLIP's text tower is never run, so the vocabulary changes no compute."""
    from worker.selftest import tiny

    folders = {"t5": folder / "umt5-xxl", "clip": folder / "xlm-roberta-large"}
    tiny._save_tokenizer(folders["t5"], pad="<pad>", eos="</s>", unk="<unk>")
    tiny._save_tokenizer(folders["clip"], pad="<pad>", eos="</s>", unk="<unk>", bos="<s>")
    return folders


def random_encoders(runtime: Runtime, quant: str | None, tokenizers: dict[str, Path]) -> dict[str, Any]:
    """T5, CLIP and the VAE as InfiniteTalkPipeline holds them (T5 on the CPU, the others on the device)."""
    import torch

    from worker.selftest import tiny

    t5, clip, vae = (cast(Any, sys.modules[f"wan.modules.{name}"]) for name in ("t5", "clip", "vae"))
    config = runtime.modules.configs[TASK]
    device = torch.device(runtime.device)
    Tokenizer = sys.modules["wan.modules.tokenizers"].HuggingfaceTokenizer

    text_model = t5.umt5_xxl(encoder_only=True, return_tokenizer=False, dtype=config.t5_dtype, device=device)
    text_model.eval().requires_grad_(False)
    if quant:
        _quantise(text_model, quant)
    text_encoder = t5.T5EncoderModel.__new__(t5.T5EncoderModel)
    text_encoder.__dict__.update(
        text_len=config.text_len, dtype=config.t5_dtype, device=torch.device("cpu"), checkpoint_path=None,
        tokenizer_path=str(tokenizers["t5"]), model=text_model if device.type == "meta" else text_model.to("cpu"),
        tokenizer=Tokenizer(name=str(tokenizers["t5"]), seq_len=config.text_len, clean="whitespace"),
    )  # fmt: skip

    clip_model, transforms = clip.clip_xlm_roberta_vit_h_14(
        pretrained=False, return_transforms=True, return_tokenizer=False, dtype=config.clip_dtype, device=device
    )
    clip_model = clip_model.eval().requires_grad_(False)
    image_encoder = clip.CLIPModel.__new__(clip.CLIPModel)
    image_encoder.__dict__.update(
        dtype=config.clip_dtype, device=device, checkpoint_path=None, tokenizer_path=str(tokenizers["clip"]),
        model=clip_model, transforms=transforms,
        tokenizer=Tokenizer(name=str(tokenizers["clip"]), seq_len=clip_model.max_text_len - 2, clean="whitespace"),
    )  # fmt: skip

    vae_dim = getattr(vae._video_vae, "keywords", {}).get("dim", 96)
    with _building(device, torch.float32):
        vae_model = vae.WanVAE_(dim=vae_dim, z_dim=16, **tiny.VAE_CONFIG)
    loader = vae._video_vae
    vae._video_vae = lambda pretrained_path=None, z_dim=16, **_: vae_model  # WanVAE's own __init__, no file
    try:
        video_vae = vae.WanVAE(vae_pth=None, device=device)
    finally:
        vae._video_vae = loader
    return {"text_encoder": text_encoder, "clip": image_encoder, "vae": video_vae}


def random_dit(runtime: Runtime, quant: str | None) -> Any:
    """InfiniteTalk's WanModel at config.json's sizes, born on the device in the pipeline's dtype."""
    import torch

    from worker.selftest import tiny

    model_module, multitalk = sys.modules["wan.modules.multitalk_model"], sys.modules["wan.multitalk"]
    config = runtime.modules.configs[TASK]
    kwargs = FULL_DIT if runtime.scale == "full" else tiny.SIZES.dit_kwargs()
    with _building(torch.device(runtime.device), config.param_dtype):
        model = model_module.WanModel(weight_init=False, **kwargs)
    model.eval().requires_grad_(False)
    if quant:
        _quantise(model, quant)
    multitalk.to_param_dtype_fp32only(model, config.param_dtype)
    return model


def random_pipeline(runtime: Runtime, variant: Variant, encoders: dict[str, Any]) -> Any:
    """An InfiniteTalkPipeline holding random models, with the attributes its __init__ sets on one GPU
    (tests/test_bench_gpu.py holds the two attribute sets equal)."""
    import torch

    cls = runtime.modules.pipeline_class
    config = runtime.modules.configs[TASK]
    pipeline = cls.__new__(cls)
    device = torch.device("cuda:0" if runtime.device == "cuda" else runtime.device)  # InfiniteTalk's device_id 0
    dit = random_dit(runtime, variant.quant)
    if runtime.device == "cuda":  # init_on_cpu: the pipeline keeps the DiT in CPU memory until a clip needs it
        dit = dit.to("cpu")
    pipeline.__dict__.update(
        device=device, config=config, rank=0, use_usp=False, t5_cpu=False,
        num_train_timesteps=config.num_train_timesteps, param_dtype=config.param_dtype,
        vae_stride=config.vae_stride, patch_size=config.patch_size, sp_size=1,
        sample_neg_prompt=config.sample_neg_prompt, num_timesteps=1000, use_timestep_transform=True,
        cpu_offload=False, model_names=["model"], vram_management=False,
        model=dit, **encoders,
    )  # fmt: skip
    return pipeline


def random_speech_encoder(scale: str) -> Any:
    """wav2vec2 with random weights on the CPU, where the engine runs it (SpeechEncoder.load's default)."""
    import torch
    import transformers

    from worker.embedding import SpeechEncoder
    from worker.selftest import tiny

    if scale == "full":
        config = transformers.Wav2Vec2Config(**WAV2VEC_BASE)
    else:
        config = transformers.Wav2Vec2Config(
            hidden_size=tiny.SIZES.wav2vec_hidden, num_hidden_layers=tiny.SIZES.wav2vec_layers,
            num_attention_heads=2, intermediate_size=48, conv_dim=(16, 16, 16), conv_stride=(5, 4, 4),
            conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Wav2Vec2Model(config).eval()
    model.feature_extractor._freeze_parameters()
    extractor = transformers.Wav2Vec2FeatureExtractor(
        feature_size=1, sampling_rate=16_000, padding_value=0.0, do_normalize=True
    )
    return SpeechEncoder(extractor, model, "cpu")


class RandomWeightsEngine(InfiniteTalkEngine):
    """The InfiniteTalk engine with one change: a variant's models are built with random weights on the device
    instead of read from files. embed, generate, the variant switch and the error mapping are the engine's own.

    T5, CLIP and the VAE depend only on the quantisation, so they are kept between variants that share it."""

    def __init__(self, settings: Settings, runtime: Runtime, tokenizers: dict[str, Path]) -> None:
        super().__init__(settings)
        self.runtime = runtime
        self.tokenizers = tokenizers
        self.encoders: tuple[str | None, dict[str, Any]] | None = None
        self.build_seconds = 0.0
        """Seconds spent building models since the bench last reset it (taken out of the job's time)."""

    def load(self) -> None:
        self.modules = self.runtime.modules
        self.speech = random_speech_encoder(self.runtime.scale)
        self._build(Variant())

    def _build(self, variant: Variant) -> float:
        self.pipeline, self.variant = None, None
        if self.encoders is not None and self.encoders[0] != variant.quant:
            self.encoders = None
        free_gpu_memory()
        began = time.perf_counter()
        if self.encoders is None:
            self.encoders = (variant.quant, random_encoders(self.runtime, variant.quant, self.tokenizers))
        pipeline = random_pipeline(self.runtime, variant, self.encoders[1])
        if variant.num_persistent_param_in_dit is not None:  # as InfiniteTalkEngine._build does
            pipeline.vram_management = True
            pipeline.enable_vram_management(num_persistent_param_in_dit=variant.num_persistent_param_in_dit)
        self.pipeline, self.variant = pipeline, variant
        seconds = time.perf_counter() - began
        self.build_seconds += seconds
        return seconds


def model_sizes(runtime: Runtime, tokenizers: dict[str, Path]) -> dict[str, dict[str, Any]]:
    """Each model's parameters and memory in its dtype, as the bench builds it (on the meta device: no memory)."""
    encoders = random_encoders(runtime, None, tokenizers)
    models = {
        "dit": random_dit(runtime, None),
        "t5": encoders["text_encoder"].model,
        "clip": encoders["clip"].model,
        "vae": encoders["vae"].model,
        "wav2vec2": random_speech_encoder(runtime.scale).model,
    }
    sizes = {}
    for name, model in models.items():
        tensors = [*model.parameters(), *model.buffers()]
        sizes[name] = {
            "parameters": sum(t.numel() for t in model.parameters()),
            "gb": round(sum(t.numel() * t.element_size() for t in tensors) / 1e9, 3),
            "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        }
    return sizes


# ------------------------------------------------------------------------------------------------------------
# Measuring one setting.
# ------------------------------------------------------------------------------------------------------------


def host() -> dict[str, Any]:
    """The GPU's name, driver and CUDA version, and the software, for every line."""
    import torch

    info: dict[str, Any] = {
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "gpu_memory_gb": None,
        "driver": None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "infinitetalk_commit": INFINITETALK_COMMIT,
    }
    if torch.cuda.is_available():
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 1e9, 1)
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20, check=False,
            )  # fmt: skip
            info["driver"] = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout else None
        if info["driver"] is None:  # no nvidia-smi in the container: the kernel module says its version
            with contextlib.suppress(OSError, IndexError):
                version = Path("/proc/driver/nvidia/version").read_text().split("Kernel Module", 1)[1].split()
                info["driver"] = version[0] if version else None
    return info


class StepClock:
    """The job's progress sink: the time of each sampling step (after the device finished it)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.steps: list[tuple[int, int, float]] = []
        """(clip, step, seconds since the job started), step 0 being the clip's start."""
        self.started = time.perf_counter()

    def __call__(self, event: dict[str, Any]) -> None:
        details = event.get("details") or {}
        if event.get("stage") == Stage.GENERATION and "step" in details and "chunk" in details:
            if self.device == "cuda":
                import torch

                torch.cuda.synchronize()
            self.steps.append((details["chunk"], details["step"], time.perf_counter() - self.started))

    def sampling(self) -> tuple[float, list[float]]:
        """Seconds spent sampling (first step's start to last step's end, per clip) and each step's time."""
        total, durations = 0.0, []
        clips: dict[int, list[tuple[int, float]]] = {}
        for clip, step, at in self.steps:
            clips.setdefault(clip, []).append((step, at))
        for marks in clips.values():
            marks.sort()
            total += marks[-1][1] - marks[0][1]
            durations += [b[1] - a[1] for a, b in itertools.pairwise(marks)]
        return total, durations


def measure(engine: RandomWeightsEngine, setting: Setting, media: Any, *, quick: bool, work: Path) -> dict[str, Any]:
    """Run one setting's job through run_job and derive its figures."""
    import torch

    from worker.pipeline import run_job

    tiny = engine.runtime.scale == "tiny"
    frame_num = 9 if tiny else 81
    steps = setting.steps if not quick else (setting.quick_steps or setting.steps)
    if tiny:
        steps = min(steps, 6 if setting.teacache else 2 if not setting.lora else 4)
    use_kernel(engine.runtime, setting.attention or engine.runtime.default_kernel)
    if engine.runtime.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    engine.build_seconds = 0.0
    clock = StepClock(engine.runtime.device)
    output = run_job(
        setting.job(media, frame_num, steps), f"bench-{setting.name}", settings=engine.settings, sink=clock,
        engine=engine, extra_roots=(media.folder,),
    )  # fmt: skip
    total = time.perf_counter() - clock.started - engine.build_seconds
    if output.get("status") != "success":
        error = output.get("error") or {}
        return {"status": "failed", "error": f"{error.get('code')}: {error.get('message')}"}
    sampling, durations = clock.sampling()
    measured = durations[1:] if len(durations) > 2 else durations
    per_step = sum(measured) / len(measured) if measured else 0.0
    clips = len({clip for clip, _, _ in clock.steps})
    outside = max(0.0, total - sampling)
    compute = outside + per_step * setting.steps * clips  # the setting's own step count (quick runs fewer)
    video = output["video"]
    frames = int(video["frames"])
    video_s = frames / FPS
    timings = output.get("timings") or {}
    line = {
        "status": "ok",
        "frames": frames,
        "frame_num": frame_num,
        "clips": clips,
        "video_s": round(video_s, 3),
        "steps_run": steps,
        "extrapolated": steps != setting.steps,
        "compute_s": round(compute, 2),
        "compute_s_per_video_s": round(compute / video_s, 3),
        "s_per_step": round(per_step, 4),
        "sampling_s": round(sampling, 2),
        "outside_sampling_s": round(outside, 2),
        "outside_sampling_share": round(outside / compute, 3) if compute else None,
        "embedding_s": round(timings.get("embedding_ms", 0) / 1000, 2),
        "encode_s": round(timings.get("encode_ms", 0) / 1000, 2),
        "model_build_s": round(engine.build_seconds, 2),
        "peak_gpu_gb": None,
        "peak_gpu_reserved_gb": None,
        "width": video["width"],
        "height": video["height"],
    }
    if engine.runtime.device == "cuda":
        line["peak_gpu_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        line["peak_gpu_reserved_gb"] = round(torch.cuda.max_memory_reserved() / 1e9, 2)
    shutil.rmtree(work / "data" / "outputs", ignore_errors=True)  # the videos are not kept
    return line


def _skip_reason(setting: Setting, runtime: Runtime) -> str | None:
    if setting.attention is None:
        return None
    state = runtime.kernels.get(setting.attention, "unknown kernel")
    if state != "available":
        return f"{setting.attention} {state}"
    if setting.attention == runtime.default_kernel:
        return f"{setting.attention} is the default kernel: the other settings' lines measure it"
    return None


def chosen_settings(names: str | None, quick: bool) -> list[Setting]:
    """The settings asked for (all, or --quick's, in their orders); an unknown name is a ValueError listing them."""
    if names:
        wanted = [name.strip() for name in names.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in {s.name for s in SETTINGS}]
        if unknown:
            raise ValueError(
                f"--settings: no setting named {', '.join(unknown)}; they are " + ", ".join(s.name for s in SETTINGS)
            )
        return [s for s in SETTINGS if s.name in wanted]
    if quick:
        by_name = {s.name: s for s in SETTINGS}
        return [by_name[name] for name in QUICK_ORDER if by_name[name].quick_steps is not None]
    return list(SETTINGS)


def run_bench(
    scale: str,
    settings_wanted: list[Setting],
    *,
    quick: bool,
    budget_s: float | None,
    out: Callable[[dict[str, Any]], None],
    src: Path,
) -> int:
    """Measure each setting and hand its line to `out`; returns how many failed."""
    from worker.selftest import media as media_module

    began = time.perf_counter()
    runtime = prepare(scale, src)
    info = host()
    common = {
        "bench": BENCH,
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "scale": scale,
        "weights": "random",
        "quick": quick,
        **info,
        "default_attention": runtime.default_kernel,
        "stood_in": runtime.stood_in,
    }
    work = Path(tempfile.mkdtemp(prefix="infinitetalk-bench-"))
    failed = 0
    try:
        media = media_module.make_media(work / "media", speech_s=1.4 if scale == "tiny" else 3.6)
        paths = WeightPaths.under(work / "models")  # never read: the engine's job mapping names them
        weights = {var: str(getattr(paths, name)) for name, var in ENV_VARS.items()} | {"INFINITETALK_SRC": str(src)}
        config = Settings(data_dir=work / "data", engine="infinitetalk", store="volume", weights=weights)
        engine = RandomWeightsEngine(config, runtime, save_tokenizers(work / "tokenizers"))
        load_began = time.perf_counter()
        engine.load()
        common["first_build_s"] = round(time.perf_counter() - load_began, 2)
        measured: dict[str, float] = {}
        for setting in settings_wanted:
            line: dict[str, Any] = {**common, **_describe(setting, runtime)}
            reason = _skip_reason(setting, runtime)
            same_size = measured.get(setting.size, 3 * measured.get("infinitetalk-480", 0.0))  # 720p: ~3x 480p
            predicted = same_size * (2 if setting.quant or setting.vram0 else 1)
            if reason is None and budget_s is not None and time.perf_counter() - began + predicted > budget_s:
                reason = f"over the run's time budget of {budget_s:.0f} s (--budget-s)"
            if reason is not None:
                out({**line, "status": "skipped", "reason": reason})
                continue
            started = time.perf_counter()
            try:
                with contextlib.redirect_stdout(sys.stderr):  # InfiniteTalk prints; stdout keeps the lines
                    line.update(measure(engine, setting, media, quick=quick, work=work))
            except Exception as error:  # one setting failing (out of memory, a kernel) still reports the rest
                line.update(status="failed", error=f"{type(error).__name__}: {error}"[:500])
                line["out_of_memory"] = is_out_of_memory(error)
                print(traceback.format_exc(limit=6), file=sys.stderr)
            if line.get("status") == "ok":  # a failure is quick and would predict too little
                measured.setdefault(setting.size, time.perf_counter() - started)
            failed += line.get("status") == "failed"
            out(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return failed


def _describe(setting: Setting, runtime: Runtime) -> dict[str, Any]:
    described = asdict(replace(setting, attention=setting.attention or runtime.default_kernel))
    described["setting"] = described.pop("name")
    described["num_persistent_param_in_dit"] = 0 if described.pop("vram0") else None
    described.pop("quick_steps")
    return described


def main(argv: list[str] | None = None, prog: str = "python -m worker bench-gpu") -> int:
    """The command line: one JSON line per setting on stdout (and appended to --out), progress on stderr. `prog` is
    the command as typed (`studio bench-gpu` too): the help's examples use it."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description=__doc__.replace("python -m worker bench-gpu", prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", choices=["full", "tiny"], default="full", help="model sizes (default: full)")
    parser.add_argument("--quick", action="store_true", help="the main settings, a few steps each (< 8 min on H100)")
    parser.add_argument("--settings", help="comma-separated settings (default: all, or --quick's): " + ", ".join(
        s.name for s in SETTINGS))  # fmt: skip
    parser.add_argument("--budget-s", type=float, help=f"start no setting past this (default {QUICK_BUDGET_S:.0f} "
                        "with --quick, else none)")  # fmt: skip
    parser.add_argument("--out", type=Path, help="also append each line to this file (a speed table)")
    parser.add_argument(
        "--sizes", action="store_true", help="print each model's parameters and memory at --scale, built on the "
        "meta device (no GPU, no memory), and stop",
    )  # fmt: skip
    args = parser.parse_args(argv)
    from worker.selftest import source_dir

    src = source_dir()
    if not (src / "wan" / "multitalk.py").exists():
        from worker.selftest import SOURCE_HINT

        print(f"bench-gpu: InfiniteTalk's source is not at {src}: {SOURCE_HINT}", file=sys.stderr)
        return 2
    if args.sizes:
        runtime = prepare(args.scale, src, meta=True)
        with tempfile.TemporaryDirectory(prefix="infinitetalk-bench-") as folder:
            sizes = model_sizes(runtime, save_tokenizers(Path(folder)))
        print(json.dumps({"bench": BENCH, "setting": "model-sizes", "scale": args.scale, "models": sizes}))
        return 0
    budget = args.budget_s if args.budget_s is not None else (QUICK_BUDGET_S if args.quick else None)
    try:
        wanted = chosen_settings(args.settings, args.quick)
    except ValueError as error:
        parser.error(str(error))  # exits with status 2, the usage and the message

    def out(line: dict[str, Any]) -> None:
        text = json.dumps(line)
        print(text, flush=True)
        if args.out is not None:
            with args.out.open("a", encoding="utf-8") as handle:
                handle.write(text + "\n")

    failed = run_bench(args.scale, wanted, quick=args.quick, budget_s=budget, out=out, src=src)
    return 1 if failed else 0
