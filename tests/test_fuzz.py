"""Fuzzing the handler: whatever arrives, the job ends in a result or a structured E_* error, and leaves no files.

`HYPOTHESIS_PROFILE=nightly` runs 10 000 payloads; CI runs the `ci` profile.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.contract import ErrorCode, JobError
from core.prices import MAX_PRICE_PER_S, QUOTED, PriceTable
from core.settings import Settings
from dashboard.config import parse_password_hash
from tests.conftest import EXAMPLES
from worker.pipeline import run_job
from worker.weights import WeightsError, refuse_unsafe_path

hypothesis_settings.register_profile(
    "ci", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
hypothesis_settings.register_profile(
    "nightly", max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

CODES = {value for name, value in vars(ErrorCode).items() if name.isupper()}
MEDIA = EXAMPLES / "media"
REFS = [
    str(MEDIA / "portrait.jpg"),
    str(MEDIA / "two_people.jpg"),
    str(MEDIA / "clip.mp4"),
    str(MEDIA / "speech_2.wav"),
    "/etc/passwd",
    str(MEDIA / ".." / ".." / "README.md"),
    "media/portrait.jpg",
    "http://127.0.0.1:1/face.jpg",
    "http://169.254.169.254/latest/meta-data",
    "file:///etc/shadow",
    "gopher://x",
    "data:image/jpeg;base64," + base64.b64encode((MEDIA / "portrait.jpg").read_bytes()[:5000]).decode(),
    "data:audio/wav;base64,UklGRg==",
    "data:;base64,@@@",
    "A" * 100,
    # URLs that parsers read differently, and IPv6 spellings of private addresses (tests/test_hostile_urls.py)
    "http://127.0.0.1:1\\@1.1.1.1/../face.jpg",
    "http://1.1.1.1@127.0.0.1:1/face.jpg",
    "http://127.0.0.1:1\t@1.1.1.1/face.jpg",
    "http://[::127.0.0.1]:1/face.jpg",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
    "http://[2002:7f00:1::]:1/face.jpg",
    "http://[fec0::1]/face.jpg",
    # manifests that point at a file outside the roots (tests/test_hostile_manifests.py)
    "data:video/mp4;base64,"
    + base64.b64encode(
        b'<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT2S"><Period>'
        b'<AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="1"><BaseURL>file:///etc/passwd'
        b"</BaseURL></Representation></AdaptationSet></Period></MPD>"
    ).decode(),
    "data:audio/wav;base64,"
    + base64.b64encode(b"#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:2,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n").decode(),
]
# Ids and prefixes that would climb out of their folder (tests/test_hostile_ids.py)
IDS = ["../x", "../../x", "../fuzz", "a\x00b", "/abs", "a/b", "\uff0e\uff0e", "..", "a" * 129, "take-1"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**12), 10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
refs = st.one_of(st.sampled_from(REFS), st.text(max_size=60), scalars)
speech = st.sampled_from([str(MEDIA / "speech_2.wav"), str(MEDIA / "speech_1.wav")]) | refs
audio = st.one_of(
    scalars,
    st.fixed_dictionaries({"person1": speech}, optional={"person2": speech, "person3": scalars}),
)
tts = st.one_of(
    scalars,
    st.fixed_dictionaries(
        {"text": st.one_of(st.text(min_size=1, max_size=40), st.just("(s1) hi (s2) yo"))},
        optional={"human1_voice": st.sampled_from(["en-us+f3", "xx", "a b", ""]), "human2_voice": scalars},
    ),
)
# Face boxes: ordinary pixels, and the values that used to run to success (issue 27): beyond the picture, 2**63,
# 1e30, booleans, fractions, text, 1-pixel boxes.
corner = st.one_of(
    st.integers(-50, 2000), st.sampled_from([0, 1, 15, 16, 512, 513, 8192, 8193, 2**63, 1e30, 1.5, True, False, "9"])
)
box = st.one_of(
    st.lists(corner, min_size=0, max_size=6),
    st.tuples(st.integers(0, 600), st.integers(0, 600), st.integers(1, 40), st.integers(1, 40)).map(
        lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]]
    ),
)
item = st.fixed_dictionaries(
    {},
    optional={
        "prompt": st.one_of(st.text(max_size=50), scalars),
        "cond_video": refs,
        "cond_audio": audio,
        "tts_audio": tts,
        "audio_type": st.sampled_from(["para", "add", "both", 3]),
        "bbox": st.one_of(scalars, st.fixed_dictionaries({"person1": box}, optional={"person2": box})),
        "size": st.sampled_from(["infinitetalk-480", "infinitetalk-720", "8k", None]),
        "mode": st.sampled_from(["clip", "streaming", "loop"]),
        "frame_num": st.one_of(st.sampled_from([5, 9, 25, 41]), st.integers(-3, 2000), scalars),
        "max_frame_num": st.one_of(st.sampled_from([25, 50]), scalars),
        "sample_steps": st.one_of(st.integers(-1, 2000), scalars),
        "base_seed": st.one_of(st.integers(-2, 2**33), scalars),
        "output_config": st.one_of(
            scalars,
            st.fixed_dictionaries(
                {},
                optional={
                    "store": st.sampled_from(["volume", "inline", "s3", "ftp"]),
                    "prefix": st.sampled_from(["ok", "../up", "a/b", "", "a/../b", "a\x00", "\uff0e\uff0e"]),
                },
            ),
        ),
        "id": st.one_of(st.sampled_from(IDS), st.text(max_size=20), scalars),
        "extra": scalars,
    },
)
VALID = {"prompt": "p", "cond_video": REFS[0], "cond_audio": {"person1": REFS[3]}, "mode": "clip", "frame_num": 25}
# One field of a good job swapped for something odd: these get past validation and exercise the later stages.
near_valid = st.builds(
    lambda key, value: {**VALID, key: value},
    st.sampled_from(
        ["cond_video", "cond_audio", "bbox", "size", "base_seed", "output_config", "frame_num", "prompt", "id"]
    ),
    st.one_of(refs, audio, st.fixed_dictionaries({"person1": box}), st.sampled_from(IDS)),
)
payloads = st.one_of(
    near_valid,
    near_valid,
    item,
    st.fixed_dictionaries({"batch": st.lists(item, max_size=3)}),
    scalars,
    st.lists(scalars, max_size=3),
)


outcomes: dict[str, int] = {}


@given(payload=payloads)
def test_any_payload_ends_in_a_result_or_a_structured_error_and_leaves_no_files(
    payload: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("fuzz")
    settings = Settings(data_dir=root / "data", input_roots=(EXAMPLES,))

    output = run_job(payload, "fuzz", settings=settings, sink=lambda _: None)
    outcomes[output["status"]] = outcomes.get(output["status"], 0) + 1

    assert output["status"] in {"success", "partial", "error"}
    failures = (
        [output] if output["status"] == "error" else [i for i in output.get("items", []) if i["status"] == "error"]
    )
    for failure in failures:
        error = failure["error"]
        assert set(error) == {"code", "message", "retryable", "at_stage"}
        assert error["code"] in CODES and error["message"] and "Traceback" not in error["message"]
        assert error["code"] != ErrorCode.GENERATION_RUNTIME, f"an unexpected exception leaked: {error}"
    if output["status"] == "success" and isinstance(payload, dict) and isinstance(payload.get("bbox"), dict):
        metadata = json.loads((settings.artifact_dir / output["metadata"]["key"]).read_text())
        picture = next(item for item in metadata["inputs"] if item["field"] == "cond_video")
        _assert_boxes_fit(payload["bbox"], picture["width"], picture["height"])
    work = settings.work_root
    assert not work.exists() or list(work.iterdir()) == []
    assert not (Path(root) / "data" / "unpublished").exists()
    for path in Path(root).rglob("*"):  # every file written is the job's own, in its own folder
        if path.is_file():
            assert path.is_relative_to(settings.artifact_dir) and "fuzz" in path.parts, path


def _assert_boxes_fit(bbox: dict[str, Any], width: int, height: int) -> None:
    """A job that succeeded with face boxes had boxes that mark something in its picture: whole numbers, at least
    16 px a side, inside the picture."""
    for box in bbox.values():
        if box is None:
            continue
        assert all(type(value) is int for value in box), box
        x0, y0, x1, y1 = box
        assert min(x0, y0) >= 0 and x1 - x0 >= 16 and y1 - y0 >= 16 and x1 <= width and y1 <= height, box


def test_the_fuzzer_reaches_both_outcomes() -> None:
    """Guards the strategy itself: a fuzzer that only ever hits validation errors proves little."""
    if not outcomes:
        pytest.skip("run together with the fuzz test")
    assert outcomes.get("success", 0) > 0 and outcomes.get("error", 0) > 0, outcomes


# ------------------------------------------------------------------------------------------------------------
# Round three's classes that need no job (issue 27): a Hub listing's paths, a password hash's costs and the
# STUDIO_GPU_PRICES overrides
# ------------------------------------------------------------------------------------------------------------

path_part = st.one_of(st.sampled_from(["..", ".", "", "a", "umt5-xxl", "x..y", "\\..", "~"]), st.text(max_size=6))


@given(parts=st.lists(path_part, min_size=1, max_size=6))
def test_a_listed_path_is_refused_or_lands_inside_its_folder(
    parts: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("models") / "Wan"
    path = "/".join(parts)
    try:
        refuse_unsafe_path("repo", "main", path, folder)
    except WeightsError as error:
        assert "\n" not in str(error) and "a path that leaves its folder" in str(error)
        return
    assert (folder / path).resolve().is_relative_to(folder.resolve()), path


@given(n=st.integers(0, 2**40), r=st.integers(-1, 2**10), p=st.integers(-1, 64))
def test_scrypt_costs_are_refused_in_one_line_or_fit_64_mib(n: int, r: int, p: int) -> None:
    problems: list[str] = []
    salt, digest = base64.b64encode(b"s" * 16).decode(), base64.b64encode(b"d" * 32).decode()
    parsed = parse_password_hash(f"scrypt${n}${r}${p}${salt}${digest}", problems)
    if parsed is None:
        assert len(problems) == 1 and "\n" not in problems[0]
        return
    assert 128 * parsed.r * parsed.n <= 64 * 2**20 and parsed.p <= 16


price_value = st.one_of(
    st.sampled_from(["1e308", "inf", "nan", "-0.1", "1_000", "\u0661.5", "0.00116\x00", "0x10", "", "."]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
price_entry = st.one_of(
    st.builds(
        lambda gpu, value: f"{gpu}={value}", st.sampled_from(["H100 PRO", "A100", "4090", "H200", "x"]), price_value
    ),
    st.text(max_size=300),
)


@given(entries=st.lists(price_entry, min_size=1, max_size=4))
def test_price_overrides_are_finite_prices_or_one_short_line(entries: list[str]) -> None:
    """Whatever STUDIO_GPU_PRICES holds, the table takes only finite prices within the bound, or refuses in one
    line that quotes at most QUOTED characters of the entry (issue 27, Low)."""
    text = "; ".join(entries)
    try:
        table = PriceTable.from_settings(Settings.from_env({"STUDIO_GPU_PRICES": text}))
    except JobError as error:
        message = str(error.message)
        assert "\n" not in message and "\x00" not in message
        assert len(message) < 400 + QUOTED, len(message)
        return
    assert all(0 <= price <= MAX_PRICE_PER_S for price in table.overrides.values()), table.overrides
