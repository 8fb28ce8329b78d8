"""The ``relay`` command: ``serve`` (API), ``worker`` (ARQ worker), ``dev`` (both + Redis)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Annotated

import structlog
import typer
import uvicorn
import uvloop
from pydantic import ValidationError

from config.settings import MissingRedis, Settings
from relay.api.app import create_app
from relay.api.protocol import server_options
from relay.cli.admin import admin_app
from relay.cli.client import DEV_TOKEN_NAME
from relay.delivery import queue
from relay.delivery.connection import RedisHealth, first_answer, redacted_target
from relay.delivery.redis_watch import startup_problem
from relay.devtools.embedded_redis import EmbeddedRedis
from relay.domain.clock import rfc3339
from relay.observability import logs
from workers.main import build_worker, run_worker

app = typer.Typer(help="Event-driven webhook relay.", no_args_is_help=True, add_completion=False)
log = structlog.get_logger("relay.cli")


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


HostOpt = Annotated[str | None, typer.Option(help="Listen address (default RELAY_HOST).")]
PortOpt = Annotated[int | None, typer.Option(help="Listen port (default RELAY_PORT).")]


def _settings(*, needs_redis: bool = False, **overrides: object) -> Settings:
    """The settings, or one line per mistake on stderr and exit status 2 (not a traceback)."""
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


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `relay dev` stops API and worker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@app.command()
def serve(
    host: HostOpt = None,
    port: PortOpt = None,
    workers: Annotated[int, typer.Option(help="uvicorn worker processes.")] = 1,
) -> None:
    """Run the HTTP API (ingest and admin). Needs RELAY_REDIS_URL."""
    settings = _settings(needs_redis=True, host=host, port=port)
    _tracing(settings)
    logs.configure(settings.log_format, settings.log_level, access_log=settings.access_log)
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


@app.command()
def worker() -> None:
    """Run the ARQ worker: delivery jobs and the recovery cron. Needs RELAY_REDIS_URL."""
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


async def _run_dev(settings: Settings) -> None:
    server = _Server(
        uvicorn.Config(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            **server_options(settings),
        )
    )
    health = RedisHealth.for_settings(settings)
    pool = queue.connect(settings, health)
    arq_worker = build_worker(settings, pool, handle_signals=False, health=health)
    worker_task = asyncio.create_task(arq_worker.async_run())

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop() -> None:
        server.should_exit = True
        stopping.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        serve_task = asyncio.create_task(server.serve())
        # Whichever ends first (a signal, the API failing, the worker failing) stops both.
        await asyncio.wait(
            [serve_task, worker_task, asyncio.create_task(stopping.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        server.should_exit = True
        await serve_task
    finally:
        # The worker's poll loop ends by itself (RelayWorker.handle_sig).
        arq_worker.handle_sig(signal.SIGINT)
        with contextlib.suppress(asyncio.CancelledError):
            await worker_task
        # Lets attempts already in flight finish and record their outcome.
        await arq_worker.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


@app.command()
def dev(host: HostOpt = None, port: PortOpt = None) -> None:
    """API and worker in one process; starts an embedded Redis if RELAY_REDIS_URL is unset."""
    settings = _settings(host=host, port=port)
    _tracing(settings)
    logs.configure(settings.log_format, settings.log_level, access_log=settings.access_log)
    redis: EmbeddedRedis | None = None
    if not settings.redis_url:
        redis = EmbeddedRedis(settings.data_dir).start()
        settings = settings.model_copy(update={"redis_url": redis.url})
        log.info("dev.redis_started", url=redis.url, data_dir=str(settings.data_dir))
    else:
        _wait_for_redis(settings)
    if settings.admin_token is None:
        from pydantic import SecretStr

        token = _dev_token(settings.data_dir)
        settings = settings.model_copy(update={"admin_token": SecretStr(token)})
        kept = settings.data_dir / DEV_TOKEN_NAME
        typer.echo(f"Admin token (also in {kept}, which relay's commands read): {token}", err=True)
    if not settings.allowed_private_networks:
        # On a laptop the receivers are local: allow them here, and only here.
        settings = settings.model_copy(update={"allowed_private_networks": DEV_NETWORKS})
    typer.echo(f"Relay listening on http://{settings.host}:{settings.port}", err=True)
    try:
        uvloop.run(_run_dev(settings))
    finally:
        if redis is not None:
            redis.stop()
            log.info("dev.redis_stopped")


@app.command()
def receiver(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1.")] = 9000,
    fail_first: Annotated[int, typer.Option(help="Answer 503 to this many requests first.")] = 0,
) -> None:
    """A local webhook receiver that prints what it gets (for trying the relay out)."""
    from relay.devtools.receiver import Received, Receiver, Reply

    def show(got: Received, reply: Reply) -> None:
        attempt = got.headers.get("x-relay-attempt", "?")
        # When each attempt came is the point of watching retries.
        at = rfc3339(int(got.at * 1000))
        typer.echo(
            f"{at} {reply.status} <- {got.headers.get('webhook-id', '-')}"
            f" attempt {attempt} type={got.headers.get('x-relay-event-type', '-')}"
            f" body={got.body[:200]!r}"
        )

    server = Receiver(port=port, on_request=show)
    server.script(*([503] * fail_first))
    typer.echo(f"Receiving on {server.url} (Ctrl-C to stop)", err=True)
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
