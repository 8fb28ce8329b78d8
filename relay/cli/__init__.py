"""The ``relay`` command: serve/worker/dev, the admin CLI and ``relay apply``."""

from relay.cli.main import app

__all__ = ["app"]
