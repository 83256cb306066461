"""Streamlit's upload route against a real `streamlit run dashboard/app.py`: a signed-out visitor cannot park files
in the server's memory (issue 27).

The visitor here is what the red team used: a script, not a browser. It takes the XSRF cookie the health route
hands out, opens its own session over Streamlit's websocket (the sign-in page is drawn for it), reads its session
id from the server's first message, and PUTs files to `/_stcore/upload_file/{session}/{file}` as the browser's
file uploader would. Before the guard every PUT was 204 and each file stayed in memory until the session ended.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import requests
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from websockets.sync.client import connect

from dashboard.signin import make_password_hash
from tests.browser_support import running_streamlit
from tests.dashboard_support import OUTSIDE_SETTINGS, ROOT
from tests.s3server import free_port

FILE_MB = 20
PUTS = 10


@dataclass
class Visitor:
    """One session of the dashboard, held open by a script: its cookies, XSRF token and session id."""

    base: str
    http: requests.Session
    xsrf: str
    session_id: str
    texts: list[str]

    def put(self, name: str, data: bytes) -> requests.Response:
        return self.http.put(
            f"{self.base}/_stcore/upload_file/{self.session_id}/{name}",
            files={"file": (f"{name}.bin", data, "application/octet-stream")},
            headers={"X-Xsrftoken": self.xsrf},
            timeout=120,
        )


@contextmanager
def open_session(base: str) -> Iterator[Visitor]:
    """A session as the browser opens one: XSRF cookie, websocket with the token, one run of the app script."""
    http = requests.Session()
    http.get(f"{base}/_stcore/health", timeout=30).raise_for_status()
    xsrf = http.cookies["_streamlit_xsrf"]
    with connect(
        f"ws{base.removeprefix('http')}/_stcore/stream",
        subprotocols=["streamlit", xsrf],  # type: ignore[list-item]
        additional_headers={"Cookie": f"_streamlit_xsrf={xsrf}", "Origin": base},
        max_size=None,
    ) as socket:
        run = BackMsg()
        run.rerun_script.query_string = ""
        run.rerun_script.page_script_hash = ""
        socket.send(run.SerializeToString())
        session_id, texts = "", []
        while True:
            message = ForwardMsg()
            message.ParseFromString(socket.recv(timeout=120))
            kind = message.WhichOneof("type")
            if kind == "new_session":
                session_id = message.new_session.initialize.session_id
            elif kind == "delta" and message.delta.new_element.WhichOneof("type") in ("heading", "markdown"):
                element = message.delta.new_element
                texts.append(element.heading.body or element.markdown.body)
            elif kind == "script_finished":
                break
        assert session_id
        yield Visitor(base, http, xsrf, session_id, texts)


@contextmanager
def dashboard(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[str, psutil.Process]]:
    """`streamlit run dashboard/app.py` on loopback from a folder of its own (the project's config.toml, no
    secrets file), with `env` on top of a clean environment."""
    home = tmp_path / "home"
    (home / ".streamlit").mkdir(parents=True)
    shutil.copy(ROOT / ".streamlit" / "config.toml", home / ".streamlit" / "config.toml")
    clean = {k: v for k, v in os.environ.items() if k not in OUTSIDE_SETTINGS and not k.startswith("STUDIO_")}
    clean.update(
        {"HOME": str(home), "PYTHONPATH": str(ROOT), "STUDIO_DATA_DIR": str(tmp_path / "data"),
         "STUDIO_LOCAL_PORT": str(free_port()), **env}
    )  # fmt: skip
    with running_streamlit(tmp_path / "streamlit.log", clean, cwd=home, timeout_s=90) as (base, process):
        yield base, psutil.Process(process.pid)


def test_a_signed_out_session_cannot_park_uploads_in_memory(tmp_path: Path) -> None:
    hashed = make_password_hash("correct horse battery staple", n=2**10)
    with dashboard(tmp_path, {"STUDIO_PASSWORD_HASH": hashed}) as (base, server), open_session(base) as visitor:
        assert "Sign in" in visitor.texts, visitor.texts
        data = os.urandom(FILE_MB * 2**20)
        before = server.memory_info().rss
        answers = [visitor.put(f"file{n}", data).status_code for n in range(PUTS)]
        grown_mb = (server.memory_info().rss - before) / 2**20
    assert answers == [400] * PUTS, "the session is not let in, so it has no upload route"
    # Before the guard: 10 x 204 and the server's memory grew by the 200 MB it kept.
    assert grown_mb < FILE_MB, f"the server grew {grown_mb:.0f} MB from {PUTS} refused {FILE_MB} MB uploads"


def test_a_session_that_is_let_in_still_uploads(tmp_path: Path) -> None:
    """No sign-in configured on loopback: every session is let in once its page has run, so the file uploader
    works as before."""
    with dashboard(tmp_path, {}) as (base, _), open_session(base) as visitor:
        assert "Submit a talking video" in visitor.texts, visitor.texts
        assert visitor.put("portrait", b"\xff\xd8\xff" + os.urandom(1000)).status_code == 204
        other = requests.put(
            f"{base}/_stcore/upload_file/not-a-session/file", files={"file": ("x", b"x")},
            headers={"X-Xsrftoken": visitor.xsrf}, cookies=visitor.http.cookies, timeout=30,
        )  # fmt: skip
    assert other.status_code == 400
