"""The ``relay`` command: ``serve`` (API), ``worker`` (ARQ worker), ``dev`` (both + Redis).

Every command pays for what this module imports, so it imports only typer: the server stack
(FastAPI, ARQ, uvicorn, the settings) is imported inside the commands that run it, and the
admin commands (:mod:`relay.cli.admin`) need only httpx and rich. tests/cli/test_startup.py
keeps it so.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from relay.cli.admin import admin_app
from relay.cli.client import DEV_TOKEN_NAME
from relay.cli.help import ReadableCommand, group

if TYPE_CHECKING:
    from config.settings import Settings

app = group(help="Event-driven webhook relay.", add_completion=False)


def _version() -> str:
    try:
        return metadata.version("webhook-relay")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"relay {_version()}")
        raise typer.Exit


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Event-driven webhook relay."""


HostOpt = Annotated[
    str | None, typer.Option(metavar="ADDRESS", help="Listen address (default RELAY_HOST).")
]
PortOpt = Annotated[
    int | None, typer.Option(metavar="PORT", help="Listen port (default RELAY_PORT).")
]


def _settings(*, needs_redis: bool = False, **overrides: object) -> Settings:
    """The settings, or one line per mistake on stderr and exit status 2 (not a traceback)."""
    from pydantic import ValidationError

    from config.settings import MissingRedis, Settings

    try:
        settings = Settings()
        if needs_redis:
            settings.require_redis_url()
    except ValidationError as exc:
        for err in exc.errors():
            name = "RELAY_" + "__".join(str(part) for part in err["loc"]).upper()
            message = str(err["msg"]).removeprefix("Value error, ")
            typer.echo(f"relay: {name}: {message}", err=True)
        raise typer.Exit(2) from None
    except MissingRedis as exc:
        typer.echo(f"relay: {exc}", err=True)
        raise typer.Exit(2) from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    return settings.model_copy(update=changes) if changes else settings


def _wait_for_redis(settings: Settings) -> None:
    """Redis must answer within RELAY_REDIS_START_TIMEOUT_S: a wrong address or a Redis that
    never came is one line and exit status 1, not a process that looks alive and does
    nothing. Once running, an outage is ridden out instead (relay.delivery.connection).
    A Redis whose maxmemory-policy is not noeviction is one line and exit status 2."""
    import asyncio

    from relay.delivery.connection import first_answer, redacted_target
    from relay.delivery.redis_watch import startup_problem

    timeout = settings.redis_start_timeout_s
    why = asyncio.run(first_answer(settings, timeout))
    if why is not None:
        typer.echo(
            f"relay: Redis at {redacted_target(settings)} did not answer within {timeout:g} s "
            f"({why}): start it, or fix RELAY_REDIS_URL (RELAY_REDIS_START_TIMEOUT_S=0 waits "
            "as long as it takes)",
            err=True,
        )
        raise typer.Exit(1)
    # An evicting Redis loses accepted events without a word: refuse it as a mistake in
    # the configuration (one line, exit 2), before anything is accepted.
    problem = asyncio.run(startup_problem(settings))
    if problem is not None:
        typer.echo(f"relay: {problem}", err=True)
        raise typer.Exit(2)


def _tracing(settings: Settings) -> None:
    """Tracing as the OTEL_* variables say, or one line saying what is wrong and exit 2."""
    from relay.observability import tracing

    try:
        tracing.configure(settings.trace_propagate)
    except tracing.TracingConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _listen(host: str, port: int, hint: str) -> socket.socket:
    """The listening socket, bound before anything claims to listen: a port in use is one
    line and exit status 1, not "listening" followed by a traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        why = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        typer.echo(f"relay: port {port} on {host} {why}: {hint}", err=True)
        raise typer.Exit(1) from None
    return sock


@app.command(cls=ReadableCommand)
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int, typer.Option(metavar="N", help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API (ingest and admin). Needs RELAY_REDIS_URL."""
    import uvicorn

    from relay.api.protocol import server_options
    from relay.observability import logs

    settings = _settings(needs_redis=True, host=host, port=port)
    _tracing(settings)
    logs.configure(settings.log_format, settings.log_level, access_log=settings.access_log)
    _listen(settings.host, settings.port, "stop what uses it, or pass --port").close()
    _wait_for_redis(settings)
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several processes serve /metrics: each must report the sum over all of them.
        # uvicorn spawns its workers afresh, so they see this before importing the client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="relay-metrics-")
    uvicorn.run(
        "relay.api.app:serve_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        **server_options(settings),
    )


@app.command(cls=ReadableCommand)
def worker() -> None:
    """Run the ARQ worker: delivery jobs and the recovery cron. Needs RELAY_REDIS_URL."""
    import uvloop

    from relay.observability import logs
    from workers.main import run_worker

    settings = _settings(needs_redis=True)
    _tracing(settings)
    logs.configure(settings.log_format, settings.log_level)
    _wait_for_redis(settings)
    uvloop.run(run_worker(settings))


def _dev_token(data_dir: Path) -> str:
    """A stable admin token for a laptop: made once, kept beside the data (mode 0600), where
    the admin commands find it."""
    path = data_dir / DEV_TOKEN_NAME
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    token = "rly_" + secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


# `relay dev` delivers to loopback and private networks unless RELAY_ALLOWED_PRIVATE_NETWORKS
# says otherwise; `serve` and `worker` allow only what that variable names.
DEV_NETWORKS = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
)


@app.command(cls=ReadableCommand)
def dev(host: HostOpt = None, port: PortOpt = None) -> None:
    """API and worker in one process; starts an embedded Redis if RELAY_REDIS_URL is unset."""
    import structlog
    import uvloop
    from pydantic import SecretStr

    from relay.cli.devserver import run_dev
    from relay.devtools.data_dir import DataDirInUse, DataDirLock
    from relay.devtools.embedded_redis import EmbeddedRedis
    from relay.observability import logs

    settings = _settings(host=host, port=port)
    _tracing(settings)
    logs.configure(settings.log_format, settings.log_level, access_log=settings.access_log)
    log = structlog.get_logger("relay.cli")
    sock = _listen(settings.host, settings.port, "is another relay running? Or pass --port")
    redis: EmbeddedRedis | None = None
    lock: DataDirLock | None = None
    try:
        if not settings.redis_url:
            try:
                # Two Redis servers on one append-only file would corrupt it.
                lock = DataDirLock(settings.data_dir).acquire()
            except DataDirInUse as exc:
                typer.echo(f"relay: {exc}", err=True)
                raise typer.Exit(1) from None
            redis = EmbeddedRedis(settings.data_dir).start()
            settings = settings.model_copy(update={"redis_url": redis.url})
            log.info("dev.redis_started", url=redis.url, data_dir=str(settings.data_dir))
        else:
            _wait_for_redis(settings)
        if settings.admin_token is None:
            token = _dev_token(settings.data_dir)
            settings = settings.model_copy(update={"admin_token": SecretStr(token)})
            kept = settings.data_dir / DEV_TOKEN_NAME
            typer.echo(
                f"Admin token (also in {kept}, which relay's commands read): {token}", err=True
            )
        if not settings.allowed_private_networks:
            # On a laptop the receivers are local: allow them here, and only here.
            settings = settings.model_copy(update={"allowed_private_networks": DEV_NETWORKS})
        typer.echo(f"Relay listening on http://{settings.host}:{settings.port}", err=True)
        uvloop.run(run_dev(settings, sock))
    finally:
        sock.close()
        if redis is not None:
            redis.stop()
            log.info("dev.redis_stopped")
        if lock is not None:
            lock.release()


def _statuses(value: str) -> list[int]:
    try:
        statuses = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected statuses such as 200,503, got {value!r}") from None
    if not statuses or any(not 100 <= s <= 599 for s in statuses):
        raise typer.BadParameter(f"statuses are 100 to 599, got {value!r}")
    return statuses


@app.command(cls=ReadableCommand)
def receiver(
    port: Annotated[int, typer.Option(metavar="PORT", help="Port on 127.0.0.1.")] = 9000,
    status: Annotated[
        str,
        typer.Option(
            metavar="CODES",
            help="Answer these statuses in turn, the last one from then on (e.g. 503,503,200).",
        ),
    ] = "200",
    delay: Annotated[
        float, typer.Option(metavar="SECONDS", min=0, help="Wait this long before answering.")
    ] = 0.0,
    secret: Annotated[
        str | None,
        typer.Option(
            metavar="WHSEC",
            envvar="RELAY_RECEIVER_SECRET",
            help="The subscription's secret: check each signature, answer 401 if it is wrong.",
        ),
    ] = None,
    fail_first: Annotated[
        int, typer.Option(metavar="N", help="Answer 503 to this many requests first.")
    ] = 0,
) -> None:
    """A local webhook receiver that prints what it gets (for trying the relay out)."""
    from relay.devtools.receiver import Receiver, Reply, SignatureCheck, describe

    answers = [503] * fail_first + _statuses(status)
    try:
        check = SignatureCheck.from_secret(secret) if secret else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--secret") from None
    try:
        server = Receiver(port=port, on_request=lambda got, reply: typer.echo(describe(got, reply)))
    except OSError as exc:
        why = "is in use" if exc.errno == 98 else f"cannot be used ({exc.strerror})"
        typer.echo(f"relay: port {port} on 127.0.0.1 {why}: pass --port", err=True)
        raise typer.Exit(1) from None
    server.default = Reply(status=answers[-1], delay_s=delay)
    server.script(*(Reply(status=s, delay_s=delay) for s in answers[:-1]))
    server.signatures = check
    note = "checking signatures, Ctrl-C to stop" if check else "Ctrl-C to stop"
    typer.echo(f"Receiving on {server.url} ({note})", err=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


# The SRE commands (events, deliveries, replay, subscriptions, sources, apply) talk to a
# running relay over its HTTP API.
app.add_typer(admin_app)

if __name__ == "__main__":
    app()
