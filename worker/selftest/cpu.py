"""Let InfiniteTalk's real code run on a machine without CUDA: the selftest's and the tests' runtime, never a GPU
worker's.

InfiniteTalk assumes an NVIDIA GPU in a handful of places. Each is met here from outside its source, which is
never edited:

- `xfuser` (sequence parallelism; its import asks CUDA for the device name) and `xformers` (CUDA kernels) are
  imported at module level. Where they cannot be imported, stand-ins answer the calls InfiniteTalk makes on one
  process: a sequence-parallel world of one, and `memory_efficient_attention` as PyTorch's SDPA. Where xformers is
  installed (the image's stack) only its CUDA kernel, `memory_efficient_attention`, is stood in for: its attention
  biases and the rest of the package are the real ones. STAND_INS names each stand-in and why.
- PyPI's torchvision is a CUDA build whose compiled ops do not load beside CPU torch, and its import then fails
  registering fake kernels for them. InfiniteTalk uses only its pure-Python transforms, so the registrations are
  skipped.
- `torch.cuda.current_device()` is a default argument evaluated at import (wan/modules/t5.py), and
  `ipc_collect()` / `synchronize()` run between steps and clips: on CPU they become the no-ops they amount to.
- The pipeline builds its device as `cuda:{device_id}`: inside wan/multitalk.py that device is the CPU.
- `flash_attention` asserts a CUDA tensor (CLIP and the DiT call it): see `attention_standin`, which the
  selftest also uses on a GPU where flash-attn is not installed.
- bf16 weights under CPU autocast mismatch dtypes: the tiny models run in float32 on CPU.

`install()` must run before InfiniteTalk's modules are imported; `adapt(modules)` after.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

_installed = False
STAND_INS: dict[str, str] = {}
"""What this process stands in for, each with what stands in and why: the selftest's summary prints it."""


def _module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None)
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def _xfuser_standin() -> None:
    """xfuser.core.distributed for a single process: rank 0 of a sequence-parallel world of 1."""
    _module("xfuser")
    _module("xfuser.core")
    _module(
        "xfuser.core.distributed",
        get_sequence_parallel_rank=lambda: 0,
        get_sequence_parallel_world_size=lambda: 1,
        get_sp_group=lambda: None,
    )


class BlockDiagonalMask:
    """xformers' block-diagonal attention bias: query block i attends to key block i only."""

    def __init__(self, q_seqlen: list[int], kv_seqlen: list[int]) -> None:
        self.q_seqlen, self.kv_seqlen = list(q_seqlen), list(kv_seqlen)

    @classmethod
    def from_seqlens(cls, q_seqlen: list[int], kv_seqlen: list[int] | None = None) -> BlockDiagonalMask:
        return cls(q_seqlen, kv_seqlen if kv_seqlen is not None else q_seqlen)

    def materialize(self, device: torch.device) -> torch.Tensor:
        import torch

        mask = torch.zeros(sum(self.q_seqlen), sum(self.kv_seqlen), dtype=torch.bool, device=device)
        q_start = k_start = 0
        for q_len, k_len in zip(self.q_seqlen, self.kv_seqlen, strict=True):
            mask[q_start : q_start + q_len, k_start : k_start + k_len] = True
            q_start, k_start = q_start + q_len, k_start + k_len
        return mask


def memory_efficient_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_bias: Any = None, op: Any = None, **_: Any
) -> torch.Tensor:
    """xformers.ops.memory_efficient_attention on (batch, tokens, heads, dim) tensors, as SDPA."""
    import torch.nn.functional as F

    if isinstance(attn_bias, BlockDiagonalMask):
        mask = attn_bias.materialize(q.device)
    elif hasattr(attn_bias, "materialize"):  # xformers' own bias (an additive float mask, -inf where masked)
        mask = attn_bias.materialize((q.shape[1], k.shape[1]), dtype=q.dtype, device=q.device)
    else:
        mask = attn_bias
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def _xformers_standin() -> None:
    attn_bias = _module("xformers.ops.fmha.attn_bias", BlockDiagonalMask=BlockDiagonalMask)
    fmha = _module("xformers.ops.fmha", attn_bias=attn_bias)
    ops = _module("xformers.ops", memory_efficient_attention=memory_efficient_attention, fmha=fmha)
    _module("xformers", ops=ops)


def attention_standin(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    q_lens: torch.Tensor | None = None,
    k_lens: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    q_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    deterministic: bool = False,
    dtype: torch.dtype | None = None,
    version: int | None = None,
) -> torch.Tensor:
    """wan.modules.attention.flash_attention's contract on PyTorch's SDPA: (batch, tokens, heads, dim) in and
    out, keys past k_lens[b] masked, queries past q_lens[b] zeroed (flash-attn's varlen output leaves them out)."""
    import torch
    import torch.nn.functional as F

    out_dtype = q.dtype
    if q_scale is not None:
        q = q * q_scale
    batch, lq, lk = q.size(0), q.size(1), k.size(1)
    mask = None
    if k_lens is not None:
        keys = torch.arange(lk, device=q.device)[None, :] < k_lens.to(q.device)[:, None]
        mask = keys[:, None, None, :]
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.to(q.dtype).transpose(1, 2), v.to(q.dtype).transpose(1, 2),
        attn_mask=mask, dropout_p=dropout_p, is_causal=causal and mask is None, scale=softmax_scale,
    ).transpose(1, 2)  # fmt: skip
    if q_lens is not None:
        rows = torch.arange(lq, device=q.device)[None, :] < q_lens.to(q.device)[:, None]
        out = out * rows[:, :, None, None].to(out.dtype)
    return out.reshape(batch, lq, *out.shape[2:]).to(out_dtype)


def has_module(name: str) -> bool:
    """Whether a package is installed (without importing it)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def install_kernel_standins() -> list[str]:
    """Stand-ins for what cannot be imported or run here: xfuser where it is missing or there is no CUDA (its
    import needs a driver), xformers where it is missing, and only xformers' CUDA kernel where it is installed but
    there is no CUDA. Returns what was stood in for (also recorded in STAND_INS, with why)."""
    import torch

    cuda = torch.cuda.is_available()
    stood_in = []
    if "xfuser" not in sys.modules and (not cuda or not has_module("xfuser")):
        why = "its import needs a CUDA driver" if has_module("xfuser") else "not installed"
        _xfuser_standin()
        STAND_INS["xfuser"] = f"a one-process sequence-parallel world ({why})"
        stood_in.append("xfuser")
    if "xformers" not in sys.modules and not has_module("xformers"):
        _xformers_standin()
        STAND_INS["xformers"] = "memory_efficient_attention and BlockDiagonalMask on SDPA (not installed)"
        stood_in.append("xformers")
    elif not cuda and "xformers" not in sys.modules:
        import xformers.ops

        xformers.ops.memory_efficient_attention = memory_efficient_attention
        STAND_INS["xformers.ops.memory_efficient_attention"] = (
            "SDPA (its kernels need CUDA; the rest of xformers is the installed package)"
        )
        stood_in.append("xformers.ops.memory_efficient_attention")
    return stood_in


def torchvision_without_compiled_ops() -> None:
    """Skip torchvision's fake-kernel registrations for compiled ops that a CUDA build cannot load on CPU (they
    only serve torch.compile on detection ops). Without this, importing torchvision, or transformers' wav2vec2
    where torchvision is installed, fails with "operator torchvision::nms does not exist". Needs no torch."""
    for name in ("torchvision._meta_registrations", "torchvision._autograd_registrations"):
        sys.modules.setdefault(name, types.ModuleType(name))


def _cuda_calls_as_noops() -> None:
    import torch

    torch.cuda.current_device = lambda: 0
    torch.cuda.ipc_collect = lambda: None
    torch.cuda.synchronize = lambda device=None: None
    torch.cuda.empty_cache = lambda: None


def install() -> None:
    """Prepare this process so InfiniteTalk's modules import and run on the CPU (before importing them)."""
    import torch

    global _installed
    if _installed:
        return
    if torch.cuda.is_available():
        raise RuntimeError("the CPU runtime is for machines without CUDA; on a GPU InfiniteTalk runs as it is")
    install_kernel_standins()
    if "torchvision" not in sys.modules and torch.version.cuda is None:
        # A CPU torch beside PyPI's CUDA torchvision (the tests' stack); the image's matching pair loads as it is.
        torchvision_without_compiled_ops()
    _cuda_calls_as_noops()
    from worker.engines import infinitetalk

    infinitetalk.CPU_RUNTIME = True
    _installed = True


class _CpuTorch(types.ModuleType):
    """wan.multitalk's view of torch: every `torch.device(...)` it builds is the CPU."""

    def __init__(self) -> None:
        super().__init__("torch")

    def __getattr__(self, name: str) -> Any:
        import torch

        return getattr(torch, name)

    @staticmethod
    def device(*_: Any, **__: Any) -> torch.device:
        import torch

        return torch.device("cpu")


def adapt(modules: Any) -> None:
    """After InfiniteTalk's import: its pipeline's device is the CPU, its attention SDPA, its dtypes float32."""
    import torch

    multitalk_module = sys.modules["wan.multitalk"]
    setattr(multitalk_module, "torch", _CpuTorch())  # noqa: B010 (a module attribute, set from outside)
    use_attention_standin("flash-attn's kernels need CUDA")
    for config in modules.configs.values():
        for key in ("param_dtype", "t5_dtype", "clip_dtype"):
            if key in config:
                config[key] = torch.float32


def use_attention_standin(why: str = "flash-attn is not installed") -> None:
    """Point every caller of InfiniteTalk's flash_attention at the SDPA stand-in."""
    STAND_INS["flash_attention"] = f"SDPA ({why})"
    for name in ("wan.modules.attention", "wan.modules.clip", "wan.modules.model", "wan.modules.multitalk_model"):
        module = sys.modules.get(name)
        if module is not None and hasattr(module, "flash_attention"):
            setattr(module, "flash_attention", attention_standin)  # noqa: B010
