"""Test stand-in for InfiniteTalk's `wan` package (see ../README.md)."""

from . import configs
from .multitalk import InfiniteTalkPipeline

__all__ = ["InfiniteTalkPipeline", "configs"]
