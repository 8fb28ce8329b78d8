"""``relay events|deliveries|replay|subscriptions|sources|tokens|apply|listen|tail``:
operate a running relay.

These commands talk only to the relay's HTTP API. Every one of them takes ``--url``
(``RELAY_URL``, default ``http://127.0.0.1:8000``), ``--token`` (``RELAY_TOKEN``, else
``RELAY_ADMIN_TOKEN``: the bootstrap admin token or an API token) and
``--json`` (print the API's JSON instead of tables, for scripts). ``--url`` is also spelled
``--relay-url``, the only spelling on ``subscriptions create``, whose ``--url`` is the
subscriber's.

Exit codes: 0 done; 1 the relay answered an error or could not be reached (or the delivery
of ``subscriptions test`` did not succeed); 2 bad usage or
input (a malformed option, an apply file that does not validate). A failure prints one line
to stderr, ``error: 404 no delivery 'dlv_x'``. The admin token is never printed.

The parts: :mod:`relay.cli.client` (HTTP, the shared options, one-line errors),
:mod:`relay.cli.render` and :mod:`relay.cli.columns` (output), one module per group in
:mod:`relay.cli.commands`. ``admin_app`` holds them all; ``relay.cli`` merges it with
``app.add_typer(admin_app)``.
"""

from __future__ import annotations

from relay.cli.client import command
from relay.cli.commands import (
    apply,
    deliveries,
    events,
    replay,
    sources,
    stream,
    subscriptions,
    tokens,
)
from relay.cli.help import group

admin_app = group()
admin_app.add_typer(events.events_app, name="events")
admin_app.add_typer(deliveries.deliveries_app, name="deliveries")
admin_app.add_typer(replay.replay_app, name="replay")
admin_app.add_typer(subscriptions.subscriptions_app, name="subscriptions")
admin_app.add_typer(sources.sources_app, name="sources")
admin_app.add_typer(tokens.tokens_app, name="tokens")
command(admin_app, "apply")(apply.apply)
command(admin_app, "listen")(stream.listen)
command(admin_app, "tail")(stream.tail)
