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

from pydantic import SecretStr, ValidationError

from relay.domain.clock import rfc3339
from relay.domain.verification import StandardWebhooksScheme, VerificationError


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    # With a SignatureCheck: "ok", or why the signature does not hold.
    signature: str | None = None


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


class SignatureCheck:
    """Checks a delivery's Standard Webhooks signature with the subscription's secret."""

    def __init__(self, scheme: StandardWebhooksScheme) -> None:
        self.scheme = scheme

    @classmethod
    def from_secret(cls, secret: str) -> SignatureCheck:
        """Raises ``ValueError`` when ``secret`` is not ``whsec_`` and base64."""
        try:
            return cls(StandardWebhooksScheme(secrets=[SecretStr(secret)]))
        except ValidationError:
            raise ValueError("the secret is not whsec_ followed by base64") from None

    def problem(self, got: Received) -> str | None:
        """Why the signature does not hold (None: it does)."""
        try:
            self.scheme.verify(got.headers, got.body, got.at)
        except VerificationError as exc:
            return exc.detail
        return None


BODY_CHARS = 200
# How often the server thread checks whether close() asked it to stop.
POLL_S = 0.05


def describe(got: Received, reply: Reply) -> str:
    """One line per request, as ``relay receiver`` prints it: when, the answer, the ids, and
    the body as text (one line, cut at 200 characters)."""
    attempt = got.headers.get("x-relay-attempt", "?")
    # When each attempt came is the point of watching retries.
    at = rfc3339(int(got.at * 1000))
    try:
        text = " ".join(got.body.decode("utf-8").split())
    except UnicodeDecodeError:
        text = f"<{len(got.body)} bytes, not UTF-8>"
    if len(text) > BODY_CHARS:
        text = text[: BODY_CHARS - 1] + "…"
    signature = f" signature={got.signature}" if got.signature else ""
    return (
        f"{at} {reply.status} <- {got.headers.get('webhook-id', '-')} attempt {attempt}"
        f" type={got.headers.get('x-relay-event-type', '-')}{signature} body={text}"
    )


class Receiver:
    """``receiver.script(503, 503, 200)`` then read ``receiver.requests``."""

    def __init__(
        self, port: int = 0, on_request: Callable[[Received, Reply], None] | None = None
    ) -> None:
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self.default = Reply()
        # Set to check signatures: a request whose signature does not hold is answered 401.
        self.signatures: SignatureCheck | None = None
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
                if receiver.signatures is not None:
                    got.signature = receiver.signatures.problem(got) or "ok"
                    if got.signature != "ok":
                        reply = Reply(401, body=f"bad signature: {got.signature}".encode())
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
        # close() waits for serve_forever to look at its stop flag, which it does once per
        # poll interval: at the default 0.5 s every test with a receiver waited ~0.25 s in
        # teardown. A wake-up every 50 ms costs nothing measurable.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": POLL_S}, daemon=True
        )
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
