"""``python -m relay.cli``: the same as the ``relay`` command."""

from relay.cli.main import app

app()
