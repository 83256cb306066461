"""A webhook receiver for tests: a real HTTP server on loopback that records what it is sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """An HTTP server that records every POST body and answers with the next of `answers` (then 200)."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answers = list(answers or [])
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()
                with receiver.arrived:
                    receiver.calls.append(body)
                    receiver.arrived.notify_all()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/studio"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, count: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """The calls, once `count` have arrived."""
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.calls) >= count, timeout_s), self.calls
            return list(self.calls)
