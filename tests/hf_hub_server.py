"""A Hugging Face Hub for tests: a real HTTP server on loopback serving tiny files in the Hub's URL layout.

What huggingface_hub 0.36 calls, and how the Hub answers (huggingface_hub/file_download.py and hf_api.py):

- `GET /api/models/{repo_id}/tree/{revision}?recursive=True&expand=False` (HfApi.list_repo_tree): a JSON list of
  `{"type": "file", "oid", "size", "path"}` (plus `"lfs": {"oid", "size", "pointerSize"}` for large files) and
  `{"type": "directory", "oid", "path"}`. The revision is URL-quoted (`refs%2Fpr%2F1`).
- `HEAD /{repo_id}/resolve/{revision}/{path}` (get_hf_file_metadata, no redirects followed): a small file answers
  200 with `ETag` (its git blob id), `X-Repo-Commit` and `Content-Length`; a large (LFS) file answers 302 to the
  CDN with `X-Linked-Etag` (its sha256), `X-Linked-Size` and `X-Repo-Commit`.
- `GET` of the file or of the CDN location, honouring `Range: bytes=N-` with 206 and `Content-Range`.

`cut_once[path] = n` sends the first GET of that file's first n bytes and then drops the connection; `fail_after_cut`
answers any later GET of a cut file 503, as a Hub having trouble would, so that a fetch gives up part-way.
Every request is recorded.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote, unquote, urlsplit

LFS_THRESHOLD = 1000
"""Files this size or larger are served as LFS files (through a CDN redirect), as the Hub does for weights."""


@dataclass
class Request:
    method: str
    path: str
    range: str | None


def commit_id(repo_id: str, revision: str) -> str:
    """A revision's commit hash (40 hex digits, as X-Repo-Commit carries it)."""
    return hashlib.sha1(f"{repo_id}@{revision}".encode()).hexdigest()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class HubServer:
    """Serves `repos[(repo_id, revision)] = {path: bytes}`."""

    repos: dict[tuple[str, str], dict[str, bytes]]
    cut_once: dict[str, int] = field(default_factory=dict)
    fail_after_cut: bool = False
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._cut_done: set[str] = set()
        self._blobs = {
            hashlib.sha256(data).hexdigest(): data for files in self.repos.values() for data in files.values()
        }
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_HEAD(self) -> None:
                hub._answer(self, body=False)

            def do_GET(self) -> None:
                hub._answer(self, body=True)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HubServer:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def gets(self, path: str) -> list[Request]:
        """The GETs that downloaded a file (by its path in the repo), in order."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith("/" + quote(path))]

    # --------------------------------------------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        url = urlsplit(handler.path)
        with self._lock:
            self.requests.append(Request(handler.command, url.path, handler.headers.get("Range")))
        tree = re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", url.path)
        resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", url.path)
        cdn = re.fullmatch(r"/cdn/([0-9a-f]{64})/(.+)", url.path)
        if tree:
            self._tree(handler, unquote(tree.group(1)), unquote(tree.group(2)), unquote(tree.group(3) or "/")[1:])
        elif resolve:
            self._resolve(
                handler, unquote(resolve.group(1)), unquote(resolve.group(2)), unquote(resolve.group(3)), body
            )
        elif cdn and cdn.group(1) in self._blobs:
            self._send(handler, self._blobs[cdn.group(1)], unquote(cdn.group(2)), body, {})
        else:
            self._error(handler, 404, "Repository Not Found")

    def _tree(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str, under: str) -> None:
        files = self.repos.get((repo_id, revision))
        if files is None:
            self._error(handler, 404, "Repository Not Found" if repo_id not in {r for r, _ in self.repos} else
                        "Revision Not Found")  # fmt: skip
            return
        entries: list[dict[str, Any]] = []
        folders: set[str] = set()
        for path, data in sorted(files.items()):
            if under and not path.startswith(under + "/"):
                continue
            parts = path.split("/")
            folders.update("/".join(parts[:i]) for i in range(1, len(parts)))
            entry: dict[str, Any] = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
            if len(data) >= LFS_THRESHOLD:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
            entries.append(entry)
        entries += [{"type": "directory", "oid": git_blob_id(f.encode()), "path": f} for f in sorted(folders)]
        payload = json.dumps(entries).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _resolve(self, handler: BaseHTTPRequestHandler, repo_id: str, revision: str, path: str, body: bool) -> None:
        files = self.repos.get((repo_id, revision))
        if files is None or path not in files:
            self._error(handler, 404, "Entry Not Found", {"X-Error-Code": "EntryNotFound"})
            return
        data = files[path]
        commit = commit_id(repo_id, revision)
        if len(data) >= LFS_THRESHOLD:
            sha = hashlib.sha256(data).hexdigest()
            handler.send_response(302)
            handler.send_header("Location", f"{self.url}/cdn/{sha}/{quote(path)}")
            handler.send_header("X-Linked-Etag", f'"{sha}"')
            handler.send_header("X-Linked-Size", str(len(data)))
            handler.send_header("X-Repo-Commit", commit)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        self._send(handler, data, path, body, {"ETag": f'"{git_blob_id(data)}"', "X-Repo-Commit": commit})

    def _send(
        self, handler: BaseHTTPRequestHandler, data: bytes, path: str, body: bool, headers: dict[str, str]
    ) -> None:
        start = 0
        wanted = handler.headers.get("Range")
        if body and path in self._cut_done and self.fail_after_cut:
            self._error(handler, 503, "Service Unavailable")
            return
        if wanted:
            found = re.fullmatch(r"bytes=(\d+)-", wanted)
            start = int(found.group(1)) if found else 0
        handler.send_response(206 if start else 200)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Accept-Ranges", "bytes")
        handler.send_header("Content-Length", str(len(data) - start))
        if start:
            handler.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        handler.end_headers()
        if not body:
            return
        cut = self.cut_once.get(path)
        with self._lock:
            cutting = cut is not None and path not in self._cut_done
            if cutting:
                self._cut_done.add(path)
        if cutting:
            handler.wfile.write(data[start:cut])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)
            return
        handler.wfile.write(data[start:])

    def _error(
        self, handler: BaseHTTPRequestHandler, status: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        payload = json.dumps({"error": message}).encode()
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.send_header("X-Error-Message", message)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
