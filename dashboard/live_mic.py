"""Recording with a live level meter: the browser's microphone over WebRTC (streamlit-webrtc), measured and written
to a WAV on the server as it arrives.

`st.audio_input` hands the page a recording only when it stops, so it cannot say "too quiet" while the person is
still speaking, and the browser holds the whole take in memory. Over WebRTC each 20 ms frame reaches the server at
once: the meter and the clipping / too-quiet warnings follow the voice, and the take is on disk, not in the tab.

WebRTC needs a route between the browser and this server: on a laptop (loopback) there always is one; behind NAT
or a strict firewall (Streamlit Community Cloud) it needs a TURN server (`STUDIO_ICE_SERVERS`, JSON like
`[{"urls": "turn:turn.example.com:3478", "username": "…", "credential": "…"}]`). Where it cannot connect the page
says so and the plain recorder (`st.audio_input`) is one click away.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from worker.audio import QUIET_SPEECH_DB

RATE = 16_000
"""What the worker decodes speech to: the take is kept at this rate, mono, 16-bit."""
WINDOW_S = 0.3
"""The meter shows the level of the last 0.3 s: a VU meter's integration time, steady enough to read."""
CLIP_LEVEL = 0.999
"""A sample at or above this (full scale) is clipped."""
CLIPPED_SHARE = 0.001
"""More than 0.1 % clipped samples in the window is audible distortion: "too loud"."""
FLOOR_DB = -90.0


def ice_servers(environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The ICE (STUN/TURN) servers from STUDIO_ICE_SERVERS; none by default, so nothing is asked of a server
    outside this machine (streamlit-webrtc would otherwise reach Google's STUN server)."""
    raw = (environ if environ is not None else os.environ).get("STUDIO_ICE_SERVERS", "").strip()
    if not raw:
        return []
    try:
        servers = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ValueError(f"STUDIO_ICE_SERVERS is not JSON ({error.msg}); give a list of {{'urls': …}}") from None
    if not isinstance(servers, list) or not all(isinstance(s, dict) and "urls" in s for s in servers):
        raise ValueError('STUDIO_ICE_SERVERS must be a JSON list of {"urls": …, "username": …, "credential": …}')
    return servers


@dataclass(frozen=True)
class Level:
    """What the meter shows now."""

    seconds: float
    rms_db: float
    peak_db: float
    clipped_share: float

    @property
    def fraction(self) -> float:
        """The meter's fill, 0–1, for -60…0 dBFS."""
        return min(1.0, max(0.0, (self.rms_db + 60.0) / 60.0))

    def advice(self) -> str | None:
        """A warning while the person speaks: clipping, or speech the worker would have to raise a lot."""
        if self.clipped_share > CLIPPED_SHARE:
            return "Too loud: the sound is clipping. Move back from the microphone or speak more softly."
        if self.seconds >= 1.0 and FLOOR_DB < self.rms_db < QUIET_SPEECH_DB and self.peak_db > QUIET_SPEECH_DB - 20:
            return f"Quiet ({self.rms_db:.0f} dB, below {QUIET_SPEECH_DB:.0f} dB): move closer to the microphone."
        return None


def _db(value: float) -> float:
    return 20 * math.log10(value) if value > 0 else FLOOR_DB


class LiveTake:
    """One take: 16 kHz mono PCM appended to a WAV file as frames arrive, with the last WINDOW_S kept for the meter.

    `add` runs on streamlit-webrtc's media thread, the page reads `level` from the script thread: a lock guards both.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._wav: wave.Wave_write | None = None
        self._frames = 0
        self._window = np.zeros(0, dtype=np.float32)
        self.finished = False

    def add_samples(self, samples: np.ndarray) -> None:
        """Append float samples in -1…1 at RATE, mono."""
        samples = np.clip(np.asarray(samples, dtype=np.float32).reshape(-1), -1.0, 1.0)
        with self._lock:
            if self.finished:
                return  # a frame still in flight after Stop: the take is closed
            if self._wav is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._wav = wave.open(str(self.path), "wb")  # noqa: SIM115 (open for the whole take; closed in finish)
                self._wav.setnchannels(1)
                self._wav.setsampwidth(2)
                self._wav.setframerate(RATE)
            self._wav.writeframes((samples * 32767).astype("<i2").tobytes())
            self._frames += samples.size
            keep = int(RATE * WINDOW_S)
            self._window = np.concatenate([self._window, samples])[-keep:]

    def add_frame(self, frame: Any) -> None:
        """Append one av.AudioFrame from the browser (48 kHz stereo, typically), resampled to 16 kHz mono."""
        import av

        resampler = getattr(self, "_resampler", None)
        if resampler is None:
            resampler = self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        for out in resampler.resample(frame):
            self.add_samples(out.to_ndarray().reshape(-1).astype(np.float32) / 32768.0)

    def level(self) -> Level:
        """The meter's reading now."""
        with self._lock:
            window = self._window
            rms = float(np.sqrt(np.mean(window**2))) if window.size else 0.0
            peak = float(np.abs(window).max(initial=0.0))
            clipped = float(np.mean(np.abs(window) >= CLIP_LEVEL)) if window.size else 0.0
            return Level(self._frames / RATE, _db(rms), _db(peak), clipped)

    def finish(self) -> bytes | None:
        """Close the take and return it as WAV bytes (None when nothing was heard); its file is removed."""
        with self._lock:
            self.finished = True
            if self._wav is None:
                return None
            self._wav.close()
            self._wav = None
        try:
            return self.path.read_bytes() if self._frames else None
        finally:
            self.path.unlink(missing_ok=True)


TAKES_DIR = Path(tempfile.gettempdir()) / "studio-live-takes"
"""Takes being recorded; each file is read and removed when its take stops."""
FALLBACK_NOTE = (
    "No level moving after Start? WebRTC could not connect: this network needs a TURN server "
    "(set `STUDIO_ICE_SERVERS`). Choose **Record** for the plain recorder, which always works."
)


IDLE_NOTE = "If the level does not move after Start recording, choose **Record** for the plain recorder."
SENTENCE_CASE = """<script>
// streamlit-webrtc draws its buttons with Material UI, in capitals ("START RECORDING"); every other button of the
// app is in sentence case (issue 29). Its frame is served by this app (same origin), so its style is set from here.
// Not once: the component's frame is still loading (about:blank, soon replaced) when this runs, and it is drawn
// anew when the recorder comes back, so each frame gets the style when it loads and on a short sweep. The sweep
// runs in this frame, and stops with it when the page changes.
const ID = "studio-sentence-case";
function style(frame) {
  let doc = null;
  try { doc = frame.contentDocument; } catch (error) { return; }
  if (doc && doc.head && !doc.getElementById(ID)) {
    const sheet = doc.createElement("style");
    sheet.id = ID;
    sheet.textContent = "button { text-transform: none !important; }";
    doc.head.appendChild(sheet);
  }
}
function sweep() {
  for (const frame of window.parent.document.querySelectorAll('iframe[title^="streamlit_webrtc"]')) {
    if (!frame.dataset.studioSentenceCase) {
      frame.dataset.studioSentenceCase = "1";
      frame.addEventListener("load", () => style(frame));
    }
    style(frame);
  }
}
sweep();
setInterval(sweep, 200);
</script>"""

ABANDONED_S = 24 * 3600


def sweep_abandoned(now: float | None = None) -> int:
    """Remove takes left by sessions that closed while recording (older than a day); returns how many."""
    cutoff = (now if now is not None else time.time()) - ABANDONED_S
    removed = 0
    for path in TAKES_DIR.glob("*.wav") if TAKES_DIR.is_dir() else []:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


NO_SOUND_AFTER_S = 3.0
"""How long a take may run without a single frame before the meter says WebRTC did not connect."""


def _meter(holder: dict[str, Any]) -> None:
    take: LiveTake | None = holder.get("take")
    if take is None:
        return
    level = take.level()
    st.progress(level.fraction, text=f"Level {level.rms_db:.0f} dB · {level.seconds:.1f} s recorded")
    if said := meter_note(level.seconds, level.advice(), time.monotonic() - holder.get("started", time.monotonic())):
        st.warning(said, icon=":material/graphic_eq:")


def meter_note(recorded_s: float, advice: str | None, running_s: float) -> str | None:
    """What the meter says under the level: FALLBACK_NOTE only while no sound has arrived NO_SOUND_AFTER_S into a
    take (it stayed under a moving level and read as a fault, issue 29), else the level's own advice."""
    if recorded_s == 0 and running_s > NO_SOUND_AFTER_S:
        return FALLBACK_NOTE
    return advice


meter = st.fragment(run_every=0.4)(_meter)


def recorder(key: str) -> bytes | None:
    """The live recorder: Start/Stop over WebRTC, a level meter while it runs; the last finished take as WAV."""
    from streamlit_webrtc import WebRtcMode, webrtc_streamer

    try:
        servers = ice_servers()
    except ValueError as error:
        st.error(f"{error}. Until then, choose **Record** for the plain recorder.", icon=":material/settings:")
        return None
    holder: dict[str, Any] = st.session_state.setdefault(key + ".holder", {"take": None, "wav": None})

    def on_frame(frame: Any) -> Any:
        take = holder.get("take")
        if take is not None:
            take.add_frame(frame)
        return frame

    context = webrtc_streamer(
        key=key,
        mode=WebRtcMode.SENDRECV,
        audio_frame_callback=on_frame,
        # The callback runs only while something pulls the processed track: it is sent back and played muted
        # (with sendback_audio=False streamlit-webrtc blocks the track and no frame ever reaches the callback).
        sendback_audio=True,
        audio_html_attrs={"muted": True, "autoPlay": True, "controls": False},
        media_stream_constraints={"audio": True, "video": False},
        rtc_configuration={"iceServers": servers},
        translations={"start": "Start recording", "stop": "Stop recording", "select_device": "Microphone"},
    )
    take: LiveTake | None = holder.get("take")
    if context.state.playing:
        if take is None or take.finished:
            sweep_abandoned()
            holder["take"] = LiveTake(TAKES_DIR / f"{uuid.uuid4().hex}.wav")
            holder["started"] = time.monotonic()
        meter(holder)
    else:
        if take is not None and not take.finished:
            holder["wav"] = take.finish()
            holder["take"] = None
        st.caption(IDLE_NOTE)
    st.iframe(SENTENCE_CASE, height=1)  # our own style, no user text; the component's frame is same-origin
    return holder.get("wav")
