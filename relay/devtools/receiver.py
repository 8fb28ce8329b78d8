"""A real HTTP receiver on 127.0.0.1 that records what it gets and answers as scripted.

The tests deliver to it, and ``relay receiver`` runs it for a walk-through:

    >>> r = Receiver(); r.script(503, 200); r.url.startswith("http://127.0.0.1:")
    True
    >>> r.close()
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Reply:
    status: int = 200
    # None: "ok" for a success, else the status's reason ("Service Unavailable"), so that
    # a 503 does not read "ok" in the attempt log.
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @property
    def content(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.status < 400:
            return b"ok"
        try:
            return HTTPStatus(self.status).phrase.encode()
        except ValueError:  # a status with no registered reason, e.g. 599
            return b"error"


class Receiver:
    """``receiver.script(503, 503, 200)`` then read ``receiver.requests``."""

    def __init__(
        self, port: int = 0, on_request: Callable[[Received, Reply], None] | None = None
    ) -> None:
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self.default = Reply()
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = self.rfile.read(length)
                with receiver._cond:
                    reply = receiver._script.popleft() if receiver._script else receiver.default
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                got = Received(
                    "POST",
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                    time.time(),
                )
                with receiver._cond:
                    receiver.requests.append(got)
                    receiver._cond.notify_all()
                if on_request is not None:
                    on_request(got, reply)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    content = reply.content
                    self.send_header("content-length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass  # on_request reports what matters; the access line is noise

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def script(self, *replies: int | Reply) -> None:
        with self._cond:
            for r in replies:
                self._script.append(Reply(status=r) if isinstance(r, int) else r)

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver got {len(self.requests)} of {count} requests")
                self._cond.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
