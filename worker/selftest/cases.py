"""The selftest's cases: each runs jobs through `run_job` with the InfiniteTalk engine, as a RunPod job does, and
checks what a user would: a muxed MP4 of the right frame count and size, progress per clip and step, cancel,
determinism, and that the speech and the weights change the frames.

A case is a function of a `Bench` that raises `CheckFailed` (or anything else) when something is wrong and
returns the frame count of its last video. CASES keeps them in the order that rebuilds the model least.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from core.contract import ErrorCode, Stage
from core.settings import Settings
from core.store import LocalStore
from worker.engines.infinitetalk import InfiniteTalkEngine
from worker.geometry import output_size
from worker.pipeline import run_job
from worker.progress import CancelToken
from worker.selftest.media import Media


class CheckFailed(AssertionError):
    """A selftest check did not hold; the message says what was expected and what came."""


def check(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


@dataclass
class Run:
    """One job's output, progress events and decoded frames."""

    output: dict[str, Any]
    events: list[dict[str, Any]]
    frames: np.ndarray | None = None

    @property
    def steps(self) -> list[tuple[int, int]]:
        """(clip, step) of every per-step progress event, in order."""
        return [
            (event["details"]["chunk"], event["details"]["step"])
            for event in self.events
            if event["stage"] == Stage.GENERATION and "step" in event["details"]
        ]

    @property
    def digest(self) -> str:
        assert self.frames is not None
        return hashlib.sha256(self.frames.tobytes()).hexdigest()


@dataclass
class Bench:
    """What the cases share: settings pointing at the tiny tree, the loaded engine, the inputs."""

    settings: Settings
    engine: InfiniteTalkEngine
    media: Media
    memo: dict[str, Run] = field(default_factory=dict)
    jobs: int = 0
    kokoro_frames: int = 2
    """How many 25 ms frames the tiny Kokoro speaks each phoneme for (tiny_kokoro.build_tiny_kokoro)."""

    def job(self, **overrides: Any) -> dict[str, Any]:
        """A short job: 9-frame clips and 2 sampling steps keep tiny-model work to seconds on a CPU."""
        return {
            "prompt": "a woman speaks warmly to the camera",
            "cond_video": str(self.media.portrait),
            "cond_audio": {"person1": str(self.media.speech_1)},
            "frame_num": 9,
            "sample_steps": 2,
            "base_seed": 42,
            **overrides,
        }

    def two_speakers(self, **overrides: Any) -> dict[str, Any]:
        """The short job with two people in the picture, each speaking."""
        speech = {"person1": str(self.media.speech_1), "person2": str(self.media.speech_2)}
        return self.job(cond_video=str(self.media.two_people), cond_audio=speech, **overrides)

    def run(self, payload: dict[str, Any], cancel: CancelToken | None = None, *, expect_success: bool = True) -> Run:
        """Run a job through run_job; decode its video when it succeeded."""
        self.jobs += 1
        events: list[dict[str, Any]] = []
        sink: Callable[[dict[str, Any]], None] = events.append
        output = run_job(
            payload,
            f"selftest-{self.jobs}",
            settings=self.settings,
            sink=sink,
            cancel=cancel,
            engine=self.engine,
            extra_roots=(self.media.folder,),
        )
        run = Run(output, events)
        if expect_success:
            check(output.get("status") == "success", f"the job failed: {output.get('error')}")
            run.frames = self.decode(output)
        return run

    def decode(self, output: dict[str, Any]) -> np.ndarray:
        """The published MP4's frames as RGB (frames, height, width, 3), checked against the result's claims."""
        video = output["video"]
        path = LocalStore(self.settings.artifact_dir).path(video["key"])
        raw = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
            capture_output=True,
            check=True,
        ).stdout
        frames = np.frombuffer(raw, np.uint8).reshape(-1, video["height"], video["width"], 3)
        check(len(frames) == video["frames"], f"the MP4 holds {len(frames)} frames, the result says {video['frames']}")
        streams = probe_streams(path)
        check(streams == {"video": "h264", "audio": "aac"}, f"the MP4's streams are {streams}, not H.264 + AAC")
        check(float(frames.std()) > 1.0, "every pixel of the video is the same: InfiniteTalk made no picture")
        return frames

    def baseline(self) -> Run:
        """The single-speaker photo job with the default settings (run once, shared by the cases)."""
        if "photo" not in self.memo:
            self.memo["photo"] = self.run(self.job())
        return self.memo["photo"]

    @contextmanager
    def vae_inputs(self) -> Iterator[list[int]]:
        """The frame count of every clip the VAE encodes during the block: the first clip encodes the
        reference frame; a streaming clip after it encodes the motion frames the previous clip left."""
        vae = self.engine.pipeline.vae
        original = vae.encode
        seen: list[int] = []

        def encode(videos: list[Any]) -> Any:
            seen.extend(int(video.shape[1]) for video in videos)
            return original(videos)

        vae.encode = encode
        try:
            yield seen
        finally:
            vae.encode = original


def probe_streams(path: Path) -> dict[str, str]:
    """codec_type -> codec_name of a file's streams."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {kind: name for name, kind in (line.split(",") for line in out.split())}


def mean_difference(a: Run, b: Run) -> float:
    assert a.frames is not None and b.frames is not None
    return float(np.abs(a.frames.astype(np.int16) - b.frames.astype(np.int16)).mean())


def expect_steps(run: Run, clips: int, steps: int) -> None:
    expected = [(clip, step) for clip in range(1, clips + 1) for step in range(steps + 1)]
    check(run.steps == expected, f"progress went {run.steps}, expected every clip and step {expected}")


def expect_frames(run: Run, frames: int) -> int:
    got = run.output["video"]["frames"]
    check(got == frames, f"{got} frames, expected {frames}")
    return int(got)


def reloaded(run: Run) -> bool:
    return any("reloaded" in warning for warning in run.output.get("warnings", []))


# ------------------------------------------------------------------------------------------------------------


def case_photo(bench: Bench) -> int:
    """One speaker from a photo: a 9-frame clip, progress for each of its 2 steps, the size bucket's frame size."""
    run = bench.baseline()
    expect_steps(run, clips=1, steps=2)
    video, image = run.output["video"], cv2.imread(str(bench.media.portrait))
    if image is None:
        raise CheckFailed(f"OpenCV cannot read the portrait {bench.media.portrait}")
    expected = output_size(image.shape[1], image.shape[0], "infinitetalk-480")
    check(
        (video["width"], video["height"]) == expected,
        f"the video is {video['width']}x{video['height']}, not {expected}",
    )
    return expect_frames(run, 9)


def case_determinism(bench: Bench) -> int:
    """The same job with the same seed gives the same frames; another seed does not."""
    again = bench.run(bench.job())
    check(again.digest == bench.baseline().digest, "the same seed gave different frames")
    other = bench.run(bench.job(base_seed=43))
    check(mean_difference(other, bench.baseline()) > 0.5, "another seed gave the same frames")
    return expect_frames(again, 9)


def case_audio(bench: Bench) -> int:
    """Other speech, same seed: other frames (the audio reaches the model)."""
    run = bench.run(bench.job(cond_audio={"person1": str(bench.media.speech_2)}))
    difference = mean_difference(run, bench.baseline())
    check(difference > 0.5, f"other speech changed the frames by only {difference:.2f} levels")
    return expect_frames(run, 9)


def case_video(bench: Bench) -> int:
    """A video as the condition: re-encoded to 25 fps H.264 and read frame by frame by InfiniteTalk."""
    run = bench.run(bench.job(cond_video=str(bench.media.video)))
    video = run.output["video"]
    check(video["width"] < video["height"], f"a portrait video made {video['width']}x{video['height']}")
    return expect_frames(run, 9)


def case_streaming(bench: Bench) -> int:
    """Streaming over three clips: each clip after the first starts from the last clip's motion frames."""
    with bench.vae_inputs() as encoded:
        run = bench.run(bench.job(mode="streaming", motion_frame=5, max_frame_num=17))
    expect_steps(run, clips=3, steps=2)
    # Per clip InfiniteTalk encodes the padded clip (9 frames) and then its motion frames: 1 (the photo) first.
    check(encoded == [9, 1, 9, 5, 9, 5], f"the VAE encoded clips of {encoded} frames, expected [9, 1, 9, 5, 9, 5]")
    return expect_frames(run, 17)


def case_cancel(bench: Bench) -> int:
    """Cancel during the first clip of a streaming job: it stops at the next clip with CANCELLED."""
    cancel = CancelToken()
    payload = bench.job(mode="streaming", motion_frame=5, max_frame_num=17)
    events: list[dict[str, Any]] = []

    def sink(event: dict[str, Any]) -> None:
        events.append(event)
        if event["details"].get("chunk") == 1 and event["details"].get("step") == 2:
            cancel.cancel()

    output = run_job(
        payload, "selftest-cancel", settings=bench.settings, sink=sink, cancel=cancel, engine=bench.engine,
        extra_roots=(bench.media.folder,),
    )  # fmt: skip
    run = Run(output, events)
    error = output.get("error") or {}
    check(error.get("code") == ErrorCode.CANCELLED, f"a cancelled job ended {output.get('status')}: {error}")
    check(error.get("at_stage") == Stage.GENERATION, f"cancel was seen at {error.get('at_stage')}")
    check(max(clip for clip, _ in run.steps) == 1, f"clips after the cancel still ran: {run.steps}")
    check("video" not in output, "a cancelled job published a video")
    return 0


def case_teacache(bench: Bench) -> int:
    """TeaCache over 6 steps (past its 5 warm-up steps, where it may skip the DiT)."""
    run = bench.run(bench.job(use_teacache=True, sample_steps=6))
    expect_steps(run, clips=1, steps=6)
    return expect_frames(run, 9)


def case_apg(bench: Bench) -> int:
    """Adaptive projected guidance instead of plain CFG: other frames from the same seed."""
    run = bench.run(bench.job(use_apg=True))
    check(mean_difference(run, bench.baseline()) > 0.1, "APG gave the same frames as plain guidance")
    return expect_frames(run, 9)


def case_two_speakers_add(bench: Bench) -> int:
    """Two speakers taking turns: the multi weights, InfiniteTalk's default left/right halves."""
    run = bench.run(bench.two_speakers(audio_type="add"))
    check(bench.engine.variant is not None and bench.engine.variant.people == "multi", "not the multi weights")
    return expect_frames(run, 9)


def case_two_speakers_para(bench: Bench) -> int:
    """Two speakers at once, each with a box."""
    boxes = {"person1": [100, 100, 340, 400], "person2": [460, 100, 700, 400]}
    run = bench.run(bench.two_speakers(audio_type="para", bbox=boxes))
    return expect_frames(run, 9)


def case_lora(bench: Bench) -> int:
    """The lightx2v LoRA at 4 steps: the model is rebuilt with it, and it changes the frames."""
    run = bench.run(bench.job(lora=True, sample_steps=4, sample_text_guide_scale=1.0, sample_audio_guide_scale=2.0))
    check(reloaded(run), "a LoRA job on a base model did not say the model was reloaded")
    expect_steps(run, clips=1, steps=4)
    return expect_frames(run, 9)


def case_variant_change(bench: Bench) -> int:
    """Between two jobs needing other variants the pipeline is rebuilt, once; the next job reuses it."""
    bench.run(bench.job())
    first = bench.run(bench.job(lora=True, lora_scale=0.5))
    again = bench.run(bench.job(lora=True, lora_scale=0.5))
    check(reloaded(first), "the first job of a new variant did not rebuild the model")
    check(not reloaded(again), "a second job of the same variant rebuilt the model again")
    check(mean_difference(first, bench.baseline()) > 0.1, "the LoRA did not change the frames")
    return expect_frames(again, 9)


def case_vram(bench: Bench) -> int:
    """num_persistent_param_in_dit=0: every DiT layer kept off the device and loaded per use."""
    run = bench.run(bench.job(num_persistent_param_in_dit=0))
    check(bench.engine.pipeline.vram_management, "VRAM management was not enabled")
    return expect_frames(run, 9)


def _quantised(bench: Bench, quant: str) -> int:
    run = bench.run(bench.job(quant=quant))
    assert run.frames is not None
    check(bench.engine.variant is not None and bench.engine.variant.quant == quant, f"not the {quant} model")
    return expect_frames(run, 9)


def kokoro_seconds(bench: Bench, words: str, voice: str) -> float:
    """How long Kokoro speaks `words`: its predicted durations, each phoneme (and its start and end tokens)
    lasting the tiny model's fixed frames of 25 ms (worker/selftest/tiny_kokoro.py)."""
    from worker.kokoro_tts import KokoroSpeech
    from worker.selftest.tiny_kokoro import SAMPLES_PER_FRAME
    from worker.speech_engines import load_speech_engine

    speaker = load_speech_engine(bench.settings)
    if not isinstance(speaker, KokoroSpeech):
        raise CheckFailed(f"the GPU engine's tts_audio is spoken by {speaker.name}, not Kokoro")
    frames = 0
    for phonemes, audio, durations in speaker.phonemes_and_audio(words, voice):
        known = sum(symbol in speaker.model.vocab for symbol in phonemes)
        check(len(durations) == known + 2, f"{len(durations)} durations for {known} phonemes of {phonemes!r}")
        check(set(durations.tolist()) == {bench.kokoro_frames}, f"durations {durations.tolist()}")
        check(audio.numel() == SAMPLES_PER_FRAME * int(durations.sum()), "Kokoro's audio is not 600 samples a frame")
        frames += int(durations.sum())
    return frames * SAMPLES_PER_FRAME / 24_000


def case_kokoro(bench: Bench) -> int:
    """Two people speaking tts_audio turns with Kokoro (InfiniteTalk's kokoro package, tiny random weights): the
    soundtrack is each turn as Kokoro speaks it plus the worker's 0.2 s pause, and the multi model animates both."""
    turns = [("Hello there, how are you?", "bm_george"), ("Fine, thanks.", "af_bella")]
    expected = sum(kokoro_seconds(bench, words, voice) + 0.2 for words, voice in turns)
    tts = {"text": f"(s1) {turns[0][0]} (s2) {turns[1][0]}", "human1_voice": "bm_george", "human2_voice": "af_bella"}
    run = bench.run(bench.job(cond_video=str(bench.media.two_people), cond_audio=None, tts_audio=tts))
    audio = next(event["details"] for event in run.events if event["stage"] == Stage.AUDIO_OK)
    check(audio["speakers"] == 2, f"{audio['speakers']} speakers in a two-person dialogue")
    check(abs(audio["duration_s"] - expected) < 0.005, f"the speech lasts {audio['duration_s']} s, not {expected:.3f}")
    check(bench.engine.variant is not None and bench.engine.variant.people == "multi", "not the multi weights")
    return expect_frames(run, 9)


def case_int8(bench: Bench) -> int:
    """InfiniteTalk's int8 DiT and T5 (quant_models), requantized by optimum-quanto."""
    return _quantised(bench, "int8")


def case_fp8(bench: Bench) -> int:
    """InfiniteTalk's fp8 DiT and T5 (quant_models)."""
    return _quantised(bench, "fp8")


CASES: dict[str, Callable[[Bench], int]] = {
    "photo": case_photo,
    "determinism": case_determinism,
    "audio": case_audio,
    "video": case_video,
    "streaming": case_streaming,
    "cancel": case_cancel,
    "teacache": case_teacache,
    "apg": case_apg,
    "two_speakers_add": case_two_speakers_add,
    "two_speakers_para": case_two_speakers_para,
    "kokoro": case_kokoro,
    "lora": case_lora,
    "variant_change": case_variant_change,
    "vram": case_vram,
    "int8": case_int8,
    "fp8": case_fp8,
}
