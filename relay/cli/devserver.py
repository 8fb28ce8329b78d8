"""`relay dev`'s process: the API and the worker on one event loop, stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Iterator

import uvicorn

from config.settings import Settings
from relay.api.app import create_app
from relay.api.protocol import server_options
from relay.delivery import queue
from relay.delivery.connection import RedisHealth
from workers.main import build_worker


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `relay dev` stops API and worker together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def run_dev(settings: Settings, sock: socket.socket) -> None:
    """Serve on ``sock`` (bound already, so a busy port was said before "listening")."""
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
        serve_task = asyncio.create_task(server.serve(sockets=[sock]))
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
