"""Talking to a running relay over HTTP, and how every admin command is wired to it.

:func:`command` gives a command the shared ``--url``/``--relay-url``, ``--token`` and
``--json`` options, a connected :class:`Relay`, and failures reported on one line.

Without a token, a relay on this machine is asked with the one `relay dev` keeps in
``$RELAY_DATA_DIR/admin-token`` (:func:`dev_token_file`), so a laptop needs no setup.
"""

from __future__ import annotations

import contextlib
import inspect
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from config.data_dir import DEFAULT_DATA_DIR
from relay.cli.help import ReadableCommand

DEFAULT_URL = "http://127.0.0.1:8000"
DEV_TOKEN_NAME = "admin-token"  # noqa: S105 (a file name, not a secret)


class CliError(Exception):
    """A failure to report on one line; ``code`` 1 for the relay's side, 2 for usage."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Relay:
    """The relay's API, as one command sees it."""

    url: str
    client: httpx.Client
    as_json: bool
    # Where the token came from when it is `relay dev`'s, to say so if the relay refuses it.
    token_file: Path | None = None

    def request(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Response:
        """Send one request; any transport error or error status becomes a :class:`CliError`."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.client.request(method, path, params=query, json=body)
        except httpx.UnsupportedProtocol:
            raise CliError(f"not an http(s) URL: {self.url}", 2) from None
        except httpx.TimeoutException:
            raise CliError(f"relay at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach relay at {self.url}: {_reason(exc)}") from None
        if response.is_error:
            hint = ""
            if response.status_code == 401 and self.token_file is not None:
                hint = f" (the token in {self.token_file}; set RELAY_ADMIN_TOKEN or pass --token)"
            raise CliError(_problem(response) + hint)
        return response

    def call(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Any:
        """:meth:`request`, returning the decoded JSON body (None when there is none)."""
        response = self.request(method, path, params=params, body=body)
        return response.json() if response.content else None


def api_path(*parts: str) -> str:
    """``/api/...`` with each id quoted, so an id cannot reach another route."""
    return "/api/" + "/".join(quote(p, safe="") for p in parts)


def _reason(exc: Exception) -> str:
    """``[Errno 111] Connection refused`` -> ``connection refused``."""
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)) or type(exc).__name__
    return text[0].lower() + text[1:]


def _problem(response: httpx.Response) -> str:
    """``404 no delivery 'dlv_x'`` from an RFC 9457 problem body (or the status phrase)."""
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        return f"{response.status_code} {response.reason_phrase}".strip()
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    errors = problem.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        loc = ".".join(str(p) for p in errors[0].get("loc", []))
        detail += f": {loc}: {errors[0].get('msg', '')}"
    return f"{response.status_code} {detail}"


def with_scheme(url: str) -> str:
    """``127.0.0.1:8000`` means ``http://127.0.0.1:8000``, as curl reads it: without the
    scheme, ``127.0.0.1`` would be taken for one and the URL for no host at all."""
    return url if "://" in url else f"http://{url}"


def warn(warnings: Any) -> None:
    """The API's ``warnings`` (a host that does not resolve yet), one line each on stderr:
    saved, but worth a look before the first delivery fails."""
    for warning in warnings or ():
        typer.echo(f"warning: {warning}", err=True)


YesOpt = Annotated[
    bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (for scripts).")
]


def confirm(question: str, yes: bool) -> None:
    """Ask ``question`` on the terminal unless ``yes``. Without a terminal to ask on (a
    script, CI) it refuses rather than act: destructive commands need ``--yes`` there."""
    if yes:
        return
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        raise CliError(f"{question} Not without confirmation: pass --yes (no terminal)", 2)
    if not typer.confirm(question, err=True):
        raise CliError("cancelled, nothing changed", 1)


def _shown(url: str) -> str:
    """The URL as errors show it: without a user or password."""
    return re.sub(r"//[^/@]*@", "//", url.rstrip("/"))


def dev_token_file() -> Path:
    """Where `relay dev` keeps the admin token it made."""
    return Path(os.environ.get("RELAY_DATA_DIR") or DEFAULT_DATA_DIR) / DEV_TOKEN_NAME


def _on_this_machine(url: str) -> bool:
    try:
        host = httpx.URL(url).host
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:  # not a URL, or a host name
        return False


def _dev_token(url: str) -> tuple[str, Path] | None:
    """`relay dev`'s token, for a relay on this machine only: never sent elsewhere."""
    path = dev_token_file()
    if not _on_this_machine(url):
        return None
    try:
        return path.read_text(encoding="utf-8").strip(), path
    except (OSError, UnicodeDecodeError):
        return None


def _connect(url: str, token: str | None) -> httpx.Client:
    if not token:
        raise CliError(
            "no admin token: set RELAY_TOKEN or RELAY_ADMIN_TOKEN, or pass --token (for a relay"
            " on this machine,"
            f" `relay dev`'s {dev_token_file()} is used when it exists)",
            2,
        )
    if not (token.isascii() and token.isprintable()):
        # Checked here: an HTTP library's complaint about a header would quote it.
        raise CliError("the admin token has characters a header cannot carry", 2)
    try:
        return httpx.Client(base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=30)
    except httpx.InvalidURL:
        raise CliError(f"not a valid URL: {_shown(url)}", 2) from None


@contextlib.contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.code) from None


# --- the shared options and the command decorator ------------------------------------------

TokenOpt = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar=["RELAY_TOKEN", "RELAY_ADMIN_TOKEN"],
        help="An API token, or the admin token.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]
_SHARED = ("relay_url", "token", "as_json")


def _shared_options(url_flags: Sequence[str]) -> list[inspect.Parameter]:
    url_opt = typer.Option(*url_flags, envvar="RELAY_URL", help="The relay's base URL.")
    keyword = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter(
            "relay_url", keyword, default=DEFAULT_URL, annotation=Annotated[str, url_opt]
        ),
        inspect.Parameter("token", keyword, default=None, annotation=TokenOpt),
        inspect.Parameter("as_json", keyword, default=False, annotation=JsonOpt),
    ]


CommandFn = Callable[..., None]


def command(
    group: typer.Typer, name: str, url_flags: Sequence[str] = ("--url", "--relay-url")
) -> Callable[[CommandFn], CommandFn]:
    """Register ``fn(relay, ...)`` as ``name``: the command gets the shared options, a
    connected :class:`Relay` as its first argument, and one-line errors. A command with a
    ``--url`` of its own passes ``url_flags=("--relay-url",)``."""

    def register(fn: CommandFn) -> CommandFn:
        signature = inspect.signature(fn, eval_str=True)
        own = list(signature.parameters.values())[1:]

        def run(**kwargs: Any) -> None:
            url, token, as_json = (kwargs.pop(key) for key in _SHARED)
            url = with_scheme(url)
            token_file = None
            if not token and (found := _dev_token(url)) is not None:
                token, token_file = found
            with _one_line_errors(), _connect(url, token) as client:
                fn(Relay(_shown(url), client, as_json, token_file), **kwargs)

        shared = _shared_options(url_flags)
        run.__signature__ = signature.replace(parameters=[*own, *shared])  # type: ignore[attr-defined]
        run.__doc__ = fn.__doc__
        group.command(name, cls=ReadableCommand)(run)
        return fn

    return register
