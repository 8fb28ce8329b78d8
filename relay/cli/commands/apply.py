"""``relay apply``: make the relay match a file, using the planner in :mod:`relay.cli.apply`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from relay.cli.client import CliError, Relay, YesOpt, api_path, confirm
from relay.cli.render import console, emit, plural, secret_line

if TYPE_CHECKING:
    from relay.cli import apply as apply_file

_VERBS: dict[apply_file.Action, str] = {
    "create": "created",
    "update": "updated",
    "delete": "deleted",
    "unchanged": "unchanged",
}


def _scope(relay: Relay) -> list[str] | None:
    """The sources the token is limited to (None: all; a relay without /api/whoami has no
    scoped tokens)."""
    try:
        found: list[str] | None = relay.call("GET", "/api/whoami")["sources"]
    except CliError as exc:
        if str(exc).startswith("404 "):
            return None
        raise
    return found


def _plan(
    relay: Relay, file: Path, prune: bool, push_secrets: bool
) -> tuple[list[apply_file.Change], list[str]]:
    # The planner validates with the API's pydantic models: imported when applying only.
    from relay.cli import apply as apply_file

    try:
        desired, skipped, outside = apply_file.within_scope(apply_file.load(file), _scope(relay))
        sources = relay.call("GET", "/api/sources")["data"]
        subscriptions = relay.call("GET", "/api/subscriptions")["data"]
        changes = apply_file.plan(
            desired, sources, subscriptions, prune=prune, push_secrets=push_secrets,
            leave_alone=outside,
        )  # fmt: skip
        return changes, skipped
    except apply_file.ApplyError as exc:
        # A file that cannot be applied as written is bad input, like a malformed option.
        raise CliError(str(exc), 2) from None


def _execute(relay: Relay, change: apply_file.Change) -> dict[str, Any] | None:
    """Make one change; returns the subscription saved (a created one with its secret, and
    the API's ``warnings``) if it was one."""
    if change.kind == "source":
        if change.action == "delete":
            relay.call("DELETE", api_path("sources", change.name))
        else:
            relay.call("PUT", api_path("sources", change.name), body=change.body)
        return None
    if change.action == "create":
        created: dict[str, Any] = relay.call("POST", "/api/subscriptions", body=change.body)
        return created
    assert change.id is not None
    if change.action == "delete":
        relay.call("DELETE", api_path("subscriptions", change.id))
        return None
    updated: dict[str, Any] = relay.call(
        "PATCH", api_path("subscriptions", change.id), body=change.body
    )
    return updated


def _apply_one(relay: Relay, change: apply_file.Change, dry_run: bool) -> dict[str, Any]:
    """Make one change (unless ``dry_run``); its report entry, with a new secret if any."""
    act = not dry_run and change.action != "unchanged"
    saved = _execute(relay, change) if act else None
    entry: dict[str, Any] = {"kind": change.kind, "name": change.name, "action": change.action}
    entry |= {"id": saved["id"] if saved else change.id, "fields": list(change.fields)}
    if saved and "secret" in saved:
        entry["secret"] = saved["secret"]
    if saved and saved.get("warnings"):
        entry["warnings"] = saved["warnings"]
    return entry


def _entry_lines(entry: Mapping[str, Any], dry_run: bool) -> list[str]:
    """``subscription billing sub_x: updated (url)`` and, once, a created one's secret."""
    action = entry["action"]
    verb = f"would {action}" if dry_run and action != "unchanged" else _VERBS[action]
    fields = f" ({', '.join(entry['fields'])})" if entry["fields"] else ""
    ident = f" {entry['id']}" if entry["id"] else ""
    lines = [f"{entry['kind']} {entry['name'] or '(unnamed)'}{ident}: {verb}{fields}"]
    if "secret" in entry:
        lines.append("  " + secret_line(entry["secret"]))
    lines += [f"  warning: {warning}" for warning in entry.get("warnings", ())]
    return lines


def apply(
    relay: Relay,
    file: Annotated[Path, typer.Argument(help="A .toml, .yaml or .yml file.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the changes only.")] = False,
    prune: Annotated[
        bool, typer.Option("--prune", help="Delete sources and subscriptions not in the file.")
    ] = False,
    push_secrets: Annotated[
        bool,
        typer.Option(
            "--push-secrets",
            help="Re-send secrets the relay never shows back (source secrets, credential-like "
            "subscription headers), so changed values are applied.",
        ),
    ] = False,
    yes: YesOpt = False,
) -> None:
    """Create or update sources and subscriptions to match FILE, idempotently.

    Values like ${ENV:NAME} come from the environment. Subscriptions are matched by their
    name in the file, kept as their description. See relay/cli/apply.py for the format.
    --prune asks before deleting unless --yes.
    """
    from relay.cli import apply as apply_file

    changes, skipped = _plan(relay, file, prune, push_secrets)
    deletions = [c for c in changes if c.action == "delete"]
    if deletions and not dry_run:
        names = ", ".join(" ".join(filter(None, (c.kind, c.name, c.id))) for c in deletions)
        confirm(f"--prune deletes {plural(len(deletions), 'item')}: {names}. Go on?", yes)
    out = console()
    if not relay.as_json:
        for name in skipped:
            out.print(Text(f"{name}: left alone (outside this token's sources)"))
    report = []
    for change in changes:
        report.append(_apply_one(relay, change, dry_run))
        if not relay.as_json:  # as it goes: if a later change fails, these stand
            for line in _entry_lines(report[-1], dry_run):
                out.print(Text(line))
    n = apply_file.counts(changes)
    totals = {verb: n[action] for action, verb in _VERBS.items()}
    done = apply_file.summary(changes)
    people = f"Dry run, nothing changed. Would be: {done}" if dry_run else done
    emit(
        relay.as_json,
        {"dry_run": dry_run, "changes": report, **totals, "outside_scope": skipped},
        Text(people),
    )
