"""``relay apply``: make a relay's sources and subscriptions match a declarative file.

Everything here is pure except :func:`load`, which reads the file and the environment; the
command (``relay.cli.commands.apply``) fetches what the relay has, asks :func:`plan` what to
change and sends those changes through the HTTP API.

The file is TOML (``.toml``) or YAML (``.yaml``/``.yml``) with two optional tables,
``sources`` and ``subscriptions``, each mapping a name to the fields the API takes::

    # relay.toml
    [sources.github]
    description = "GitHub organisation webhooks"
    event_type_header = "X-GitHub-Event"
    idempotency_header = "X-GitHub-Delivery"
    verification = { scheme = "github", secrets = ["${ENV:GITHUB_WEBHOOK_SECRET}"] }

    [subscriptions.billing-push]      # the name is kept as the subscription's description
    url = "https://billing.internal/hooks/github"
    sources = ["github"]
    event_types = ["push", "pull_request"]
    headers = { Authorization = "Bearer ${ENV:BILLING_HOOK_TOKEN}" }
    retry = { max_attempts = 5 }

The same in YAML::

    sources:
      github:
        event_type_header: X-GitHub-Event
        verification: {scheme: github, secrets: ["${ENV:GITHUB_WEBHOOK_SECRET}"]}
    subscriptions:
      billing-push:
        url: https://billing.internal/hooks/github
        sources: [github]

Rules:

- **Secrets from the environment.** ``${ENV:NAME}`` anywhere inside a string value is replaced
  by the environment variable ``NAME``. A variable that is not set is an error naming it
  (values are never printed, and diffs name fields, never values).
- **Sources** are keyed by name (``PUT /api/sources/{name}``). Their secrets are write-only
  (the API shows only ``secret_count``), so a source counts as unchanged when every visible
  field and the number of secrets are equal, and is then not sent. A secret whose *value*
  changed cannot be seen: pass ``--push-secrets`` to re-send every source that has secrets.
- **Subscriptions** get their ids from the relay, so the file's name is the key: it is stored
  as the subscription's ``description`` (a ``description`` field in the file is refused) and
  matched exactly. Absent: created (its signing secret is printed once). Different: only the
  changed fields are PATCHed, so the id and secret stay. Omitted fields mean the API's
  defaults, except ``enabled``: it is operational state (the relay disables a subscription
  answered ``410``, an operator re-enables it), so it is only managed when the file sets it.
  Two subscriptions on the relay with the same managed name are an error.
- **Nothing is deleted** unless ``prune`` is asked for; then every source and subscription
  that is not in the file is deleted (subscriptions first).
"""

from __future__ import annotations

import os
import re
import tomllib
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from relay.domain.models import SOURCE_NAME_PATTERN, SourceIn, SubscriptionIn, shown_headers
from relay.domain.redaction import mask_url

Kind = Literal["source", "subscription"]
Action = Literal["create", "update", "delete", "unchanged"]

ENV_REFERENCE = re.compile(r"\$\{ENV:([A-Za-z_][A-Za-z0-9_]*)\}")
# Fields that record what the relay or an operator did, not configuration: managed only when
# the file sets them (``paused`` too, should the API take it on create).
OPERATIONAL_FIELDS = frozenset({"enabled", "paused"})


class ApplyError(Exception):
    """The file cannot be applied as written; the message is safe to show (no values)."""


@dataclass(frozen=True)
class Desired:
    """The file's sources and subscriptions, names to request bodies (env substituted)."""

    sources: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Change:
    """One step of a plan. ``body`` is what to send (it may hold secrets: never shown)."""

    kind: Kind
    action: Action
    name: str
    id: str | None = None  # the subscription's id on the relay, when it has one
    fields: tuple[str, ...] = ()  # the fields an update changes
    body: dict[str, Any] | None = field(default=None, repr=False)


# --- reading the file ----------------------------------------------------------------------


def parse(text: str, suffix: str) -> dict[str, Any]:
    """The document in ``text``, by file extension (``.toml``, ``.yaml``, ``.yml``)."""
    suffix = suffix.lower()
    try:
        if suffix == ".toml":
            doc: Any = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            doc = yaml.safe_load(text)
        else:
            raise ApplyError(f"unknown file type {suffix!r}: use .toml, .yaml or .yml")
    except tomllib.TOMLDecodeError as exc:
        # TOML's message ends "(at line 3, column 5)"; it does not quote the offending value.
        raise ApplyError(f"cannot parse the file: {str(exc).splitlines()[0]}") from None
    except yaml.YAMLError as exc:
        raise ApplyError(f"cannot parse the file: {_yaml_problem(exc)}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ApplyError("the file must hold a table with 'sources' and/or 'subscriptions'")
    return doc


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """``line 4, column 3: mapping values are not allowed here`` (PyYAML's first line is
    only the context, "while scanning a simple key", with the position further down)."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is None:
        return str(problem)
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"


def substitute_env(value: Any, env: Mapping[str, str]) -> Any:
    """``value`` with every ``${ENV:NAME}`` in its strings replaced from ``env``.

    Raises :class:`ApplyError` naming every variable that is not set.
    """
    missing: set[str] = set()
    result = _substitute(value, env, missing)
    if missing:
        names = ", ".join(sorted(missing))
        raise ApplyError(f"environment variable(s) not set: {names}")
    return result


def _substitute(value: Any, env: Mapping[str, str], missing: set[str]) -> Any:
    if isinstance(value, str):
        return _substitute_str(value, env, missing)
    if isinstance(value, dict):
        return {k: _substitute(v, env, missing) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, missing) for v in value]
    return value


def _substitute_str(value: str, env: Mapping[str, str], missing: set[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            missing.add(name)
            return ""
        return env[name]

    result = ENV_REFERENCE.sub(replace, value)
    if "${ENV:" in ENV_REFERENCE.sub("", value):
        raise ApplyError("malformed ${ENV:...} reference: names are letters, digits and _")
    return result


def desired_state(doc: Mapping[str, Any]) -> Desired:
    """Check the document's shape and names, and validate every entry against the API's
    own models, so a bad file fails before anything is sent."""
    unknown = sorted(set(doc) - {"sources", "subscriptions"})
    if unknown:
        raise ApplyError(f"unknown top-level key(s): {', '.join(map(str, unknown))}")
    sources = _named_tables(doc.get("sources"), "sources")
    subscriptions = _named_tables(doc.get("subscriptions"), "subscriptions")
    for name, spec in sources.items():
        if not re.fullmatch(SOURCE_NAME_PATTERN, name):
            raise ApplyError(f"sources.{name}: not a valid source name")
        _source_view(spec, f"sources.{name}")
    for name, spec in subscriptions.items():
        if "description" in spec:
            raise ApplyError(
                f"subscriptions.{name}: no 'description' here: the name is the description"
            )
        _subscription_view(name, spec)
    return Desired(sources=sources, subscriptions=subscriptions)


def _named_tables(value: Any, where: str) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApplyError(f"{where}: must map names to tables")
    for name, spec in value.items():
        if not isinstance(name, str) or not name:
            raise ApplyError(f"{where}: every name must be a non-empty string")
        if not isinstance(spec, dict):
            raise ApplyError(f"{where}.{name}: must be a table of fields")
    return value


def load(path: Path, env: Mapping[str, str] | None = None) -> Desired:
    """Read, substitute and validate a file (``env`` defaults to ``os.environ``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ApplyError(f"cannot read {path}: {exc.strerror or exc}") from None
    doc = substitute_env(parse(text, path.suffix), os.environ if env is None else env)
    return desired_state(doc)


# --- comparing -----------------------------------------------------------------------------


def _invalid(where: str, exc: ValidationError) -> ApplyError:
    # loc and msg only: pydantic's input echo could carry a secret.
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    suffix = f".{loc}" if loc else ""
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return ApplyError(f"{where}{suffix}: {first.get('msg', 'invalid')}{more}")


def _source_view(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A source as the API shows it (``Source.public()``, without name and timestamps)."""
    try:
        data = SourceIn.model_validate(spec).model_dump(mode="json")
    except ValidationError as exc:
        raise _invalid(where, exc) from None
    secrets = data["verification"].pop("secrets", None)
    if secrets is not None:
        data["verification"]["secret_count"] = len(secrets)
    return data


def _subscription_view(name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The fields the file manages, normalised as the API takes them (URL, defaults)."""
    try:
        model = SubscriptionIn.model_validate({**spec, "description": name})
    except ValidationError as exc:
        raise _invalid(f"subscriptions.{name}", exc) from None
    data = model.model_dump(mode="json")
    return {k: v for k, v in data.items() if k not in OPERATIONAL_FIELDS or k in spec}


def _as_shown(view: Mapping[str, Any]) -> dict[str, Any]:
    """The view as the API shows it back: header values (unless public) and the URL's
    password and query values are masked."""
    shown = {**view, "url": mask_url(view["url"])}
    shown["headers"] = shown_headers(view["headers"], view["public_headers"])
    return shown


def source_changes(
    desired: Mapping[str, dict[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    prune: bool = False,
    push_secrets: bool = False,
) -> list[Change]:
    have = {str(s["name"]): s for s in current}
    changes: list[Change] = []
    for name, spec in desired.items():
        if name not in have:
            changes.append(Change("source", "create", name, body=spec))
            continue
        want = _source_view(spec, f"sources.{name}")
        now = have[name]
        differ = tuple(sorted(k for k, v in want.items() if now.get(k) != v))
        if push_secrets and "secrets" in spec.get("verification", {}):
            differ = differ or ("verification.secrets",)
        action: Action = "update" if differ else "unchanged"
        changes.append(Change("source", action, name, fields=differ, body=spec))
    if prune:
        changes += [Change("source", "delete", n) for n in sorted(have) if n not in desired]
    return changes


def subscription_changes(
    desired: Mapping[str, dict[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    prune: bool = False,
    push_secrets: bool = False,
) -> list[Change]:
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for sub in current:
        by_name.setdefault(str(sub.get("description", "")), []).append(sub)
    changes: list[Change] = []
    for name, spec in desired.items():
        found = by_name.get(name, [])
        if len(found) > 1:
            ids = ", ".join(str(s["id"]) for s in found)
            raise ApplyError(
                f"subscriptions.{name}: {len(found)} subscriptions on the relay have this "
                f"description ({ids}); delete or rename all but one"
            )
        if not found:
            changes.append(
                Change("subscription", "create", name, body={**spec, "description": name})
            )
            continue
        sub = found[0]
        want = _subscription_view(name, spec)
        shown = _as_shown(want)
        differ = tuple(sorted(k for k, v in shown.items() if sub.get(k) != v))
        masked = {k for k in ("headers", "url") if shown[k] != want[k]}
        if push_secrets and masked:
            # Masked values cannot be compared: re-send them when asked to.
            differ = tuple(sorted({*differ, *masked}))
        patch = {k: want[k] for k in differ}
        action: Action = "update" if differ else "unchanged"
        changes.append(Change("subscription", action, name, str(sub["id"]), differ, patch))
    if prune:
        for name in sorted(n for n in by_name if n not in desired):
            changes += [Change("subscription", "delete", name, str(s["id"])) for s in by_name[name]]
    return changes


def plan(
    desired: Desired,
    sources: Sequence[Mapping[str, Any]],
    subscriptions: Sequence[Mapping[str, Any]],
    *,
    prune: bool = False,
    push_secrets: bool = False,
    leave_alone: Collection[str] = (),
) -> list[Change]:
    """Every change, in the order to make them: sources before the subscriptions that name
    them, and deletions last (subscriptions before sources). Subscriptions named in
    ``leave_alone`` (see :func:`within_scope`) are neither changed nor pruned."""
    src = source_changes(desired.sources, sources, prune=prune, push_secrets=push_secrets)
    current = [s for s in subscriptions if str(s.get("description", "")) not in leave_alone]
    subs = subscription_changes(
        desired.subscriptions, current, prune=prune, push_secrets=push_secrets
    )
    keep = [c for c in src + subs if c.action != "delete"]
    return (
        keep + [c for c in subs if c.action == "delete"] + [c for c in src if c.action == "delete"]
    )


def within_scope(
    desired: Desired, scope: Collection[str] | None
) -> tuple[Desired, list[str], set[str]]:
    """The part of the file a token limited to ``scope`` may apply (None: all of it), what
    it leaves alone (sources outside the scope, and subscriptions naming any, or "*"), and
    the names of those subscriptions: :func:`plan` must leave them alone on the relay too.
    A subscription the token sees whose entry in the file names another team's source (a
    shared file someone widened) is not "gone from the file": ``--prune`` must not delete
    it. The relay lists only what is in scope, so ``--prune`` never reaches beyond it."""
    if scope is None:
        return desired, [], set()
    sources = {n: s for n, s in desired.sources.items() if n in scope}
    subscriptions = {
        n: s
        for n, s in desired.subscriptions.items()
        if (named := list(s.get("sources") or [])) and all(x in scope for x in named)
    }
    skipped = [f"source {n}" for n in desired.sources if n not in sources]
    outside = {n for n in desired.subscriptions if n not in subscriptions}
    skipped += [f"subscription {n}" for n in desired.subscriptions if n in outside]
    return Desired(sources=sources, subscriptions=subscriptions), skipped, outside


def counts(changes: Sequence[Change]) -> Counter[Action]:
    return Counter(c.action for c in changes)


def summary(changes: Sequence[Change]) -> str:
    """``"1 created, 0 updated, 3 unchanged"`` (and ``", 2 deleted"`` when any were)."""
    n = counts(changes)
    text = f"{n['create']} created, {n['update']} updated, {n['unchanged']} unchanged"
    return text + (f", {n['delete']} deleted" if n["delete"] else "")
