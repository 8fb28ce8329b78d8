"""The import rules between layers, read from the source with ``ast`` (nothing is imported).

A module pattern ``a.b`` stands for ``a.b`` and every module under it; ``a.b.*`` only for the
modules under it, so a package's ``__init__`` can stay allowed while its internals are not.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# The installed packages. Tests and benchmarks are development code: they may use devtools.
PACKAGES = ("relay", "workers", "config")


@dataclass(frozen=True)
class Rule:
    name: str
    scope: tuple[str, ...]  # globs of files, relative to the repository root
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()  # fnmatch patterns of files in scope the rule leaves alone

    def files(self) -> list[Path]:
        found = {p for pattern in self.scope for p in ROOT.glob(pattern)}
        return sorted(p for p in found if not _exempt(p, self.exempt))

    def breaks(self, module: str) -> bool:
        return _matches(module, self.forbidden) and not _matches(module, self.allowed)


def _exempt(path: Path, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(path.relative_to(ROOT).as_posix(), p) for p in patterns)


def _matches(module: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(module, p) or fnmatchcase(module, f"{p}.*") for p in patterns)


RULES = (
    Rule(
        "domain-is-pure",
        ("relay/domain/**/*.py",),
        forbidden=(
            "redis",
            "httpx",
            "httpcore",
            "arq",
            "fastapi",
            "starlette",
            "uvicorn",
            "prometheus_client",
            "structlog",
            "relay.storage",
            "relay.delivery",
            "relay.api",
            "relay.cli",
            "relay.devtools",
            "relay.observability",
            "workers",
            "config",
        ),
    ),
    Rule(
        "storage-below-delivery",
        ("relay/storage/**/*.py",),
        forbidden=(
            "relay.delivery",
            "relay.api",
            "relay.cli",
            "relay.devtools",
            "workers",
            "config",
            "httpx",
            "fastapi",
            "arq",
        ),
    ),
    Rule(
        "delivery-below-api",
        ("relay/delivery/**/*.py",),
        forbidden=("relay.api", "relay.cli", "relay.devtools", "workers", "fastapi", "starlette"),
    ),
    Rule(
        "api-below-cli-and-workers",
        ("relay/api/**/*.py",),
        forbidden=("relay.cli", "relay.devtools", "workers"),
    ),
    Rule(
        "api-uses-storage-surface",
        ("relay/api/**/*.py",),
        # The package's public surface (Store and its value types), never keys or scripts.
        forbidden=("relay.storage.*",),
    ),
    Rule(
        "ui-over-use-cases",
        ("relay/ui/**/*.py",),
        # The dashboard reads and acts through relay.api's services and relay.delivery's use
        # cases, like the API: never a key, a script or a Redis client of its own.
        forbidden=("relay.storage.*", "redis", "relay.cli", "relay.devtools", "workers"),
    ),
    Rule(
        "admin-cli-over-http",
        ("relay/cli/**/*.py",),
        forbidden=("relay.storage", "relay.delivery", "relay.api", "workers", "relay.devtools"),
        # `relay serve | worker | dev` start the processes themselves (dev's in devserver).
        exempt=("relay/cli/main.py", "relay/cli/devserver.py"),
    ),
    Rule(
        "devtools-only-for-cli",
        tuple(f"{package}/**/*.py" for package in PACKAGES),
        forbidden=("relay.devtools",),
        exempt=("relay/cli/*", "relay/devtools/*"),
    ),
    Rule(
        "observability-on-domain-only",
        ("relay/observability/**/*.py",),
        forbidden=("relay", "workers", "config"),
        allowed=("relay.domain", "relay.observability"),
    ),
)

# Known violations, each with its reason, marked strict xfail so a fix shows up: none now.
KNOWN: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports(source: str, path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``source`` imports, with its line; ``from p import m`` yields ``p.m`` too."""
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            yield node.lineno, base
            for alias in node.names:
                # Only a submodule is a module import; a class or constant belongs to ``base``.
                if _is_module(f"{base}.{alias.name}"):
                    yield node.lineno, f"{base}.{alias.name}"


def violations(rule: Rule, path: Path, source: str | None = None) -> list[str]:
    found = imports(path.read_text() if source is None else source, path)
    return [
        f"{path.relative_to(ROOT)}:{n} imports {name}" for n, name in found if rule.breaks(name)
    ]


def _case(rule: Rule, path: Path) -> object:
    key = (rule.name, path.relative_to(ROOT).as_posix())
    marks = [pytest.mark.xfail(strict=True, reason=KNOWN[key])] if key in KNOWN else []
    return pytest.param(rule, path, id=f"{rule.name}:{module_name(path)}", marks=marks)


@pytest.mark.parametrize(("rule", "path"), [_case(r, p) for r in RULES for p in r.files()])
def test_module_keeps_its_layer(rule: Rule, path: Path) -> None:
    found = violations(rule, path)
    assert not found, f"{rule.name}: " + "; ".join(found)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_covers_files(rule: Rule) -> None:
    # A mistyped glob would make a rule pass by checking nothing.
    assert rule.files()


def test_known_violations_name_real_cases() -> None:
    cases = {(r.name, p.relative_to(ROOT).as_posix()) for r in RULES for p in r.files()}
    assert set(KNOWN) <= cases


# One import each rule must refuse, in a file it covers (a new rule needs one too): a rule
# whose patterns match nothing would pass forever.
BREAKING = {
    "domain-is-pure": ("relay/domain/models.py", "from config.settings import Settings"),
    "storage-below-delivery": ("relay/storage/store.py", "import httpx"),
    "delivery-below-api": ("relay/delivery/fanout.py", "from relay.api import app"),
    "api-below-cli-and-workers": ("relay/api/app.py", "from workers.main import build_worker"),
    "api-uses-storage-surface": ("relay/api/sources.py", "from relay.storage import keys"),
    "ui-over-use-cases": ("relay/ui/pages.py", "from relay.storage.keys import Keys"),
    "admin-cli-over-http": ("relay/cli/admin.py", "from relay.storage import Store"),
    "devtools-only-for-cli": ("workers/main.py", "from relay import devtools"),
    "observability-on-domain-only": (
        "relay/observability/logs.py",
        "from relay.delivery.queue import enqueue_delivery",
    ),
}


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_rule_refuses_a_bad_import(rule: Rule) -> None:
    file, line = BREAKING[rule.name]
    path = ROOT / file
    assert path in rule.files()
    assert violations(rule, path, line)


@pytest.mark.parametrize(
    ("file", "line", "expected"),
    [
        ("relay/api/app.py", "from relay.storage import RelayStore", {"relay.storage"}),
        (
            "relay/api/app.py",
            "from relay.storage import keys",
            {"relay.storage", "relay.storage.keys"},
        ),
        ("relay/api/app.py", "from .. import storage", {"relay", "relay.storage"}),
        ("relay/api/app.py", "from ..storage.keys import Keys", {"relay.storage.keys"}),
        ("relay/api/__init__.py", "from .deps import X", {"relay.api.deps"}),
        ("relay/api/app.py", "import redis.asyncio as r", {"redis.asyncio"}),
        ("relay/api/app.py", "def f():\n    import arq\n", {"arq"}),
    ],
)
def test_imports_are_resolved(file: str, line: str, expected: set[str]) -> None:
    assert {name for _, name in imports(line, ROOT / file)} == expected
