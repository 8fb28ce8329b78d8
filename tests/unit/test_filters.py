"""Content filters on provider-shaped payloads, without Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest

from relay.domain.filters import EventFacts, SpecError, compile_filter
from relay.domain.models import SubscriptionIn
from tests.payloads import (
    GITHUB_PULL_REQUEST,
    GITHUB_PUSH,
    SHOPIFY_ORDER_CREATE,
    STRIPE_INVOICE_PAID,
    raw,
)

PUSH = EventFacts({"x-github-event": "push"}, raw(GITHUB_PUSH))
PR = EventFacts({"x-github-event": "pull_request"}, raw(GITHUB_PULL_REQUEST))
INVOICE = EventFacts({"stripe-signature": "t=1,v1=x"}, raw(STRIPE_INVOICE_PAID))
ORDER = EventFacts({"x-shopify-topic": "orders/create"}, raw(SHOPIFY_ORDER_CREATE))


def matches(spec: Any, facts: EventFacts) -> bool:
    return compile_filter(spec).check(facts) is None


@pytest.mark.parametrize(
    ("spec", "facts", "expected"),
    [
        ({"body": "ref", "eq": "refs/heads/main"}, PUSH, True),
        ({"body": "ref", "eq": "refs/heads/dev"}, PUSH, False),
        ({"body": "created", "eq": False}, PUSH, True),
        ({"body": "repository.stargazers_count", "eq": True}, PUSH, False),  # 42 is not true
        ({"body": "repository.id", "eq": 35129377}, PUSH, True),
        ({"body": "ref", "ne": "refs/heads/dev"}, PUSH, True),
        ({"body": "ref", "ne": "refs/heads/main"}, PUSH, False),
        ({"body": "repository.full_name", "in": ["acme/api", "acme/web"]}, PUSH, True),
        ({"body": "repository.full_name", "in": ["acme/other"]}, PUSH, False),
        ({"body": "repository.full_name", "not_in": ["acme/api"]}, PR, True),
        ({"body": "repository.full_name", "not_in": ["acme/web"]}, PR, False),
        ({"body": "head_commit", "exists": True}, PUSH, True),
        ({"body": "head_commit", "exists": False}, PR, True),
        ({"body": "pull_request.additions", "gt": 99}, PR, True),
        ({"body": "pull_request.additions", "gt": 100}, PR, False),
        ({"body": "pull_request.additions", "gte": 100}, PR, True),
        ({"body": "pull_request.deletions", "lt": 3}, PR, False),
        ({"body": "pull_request.deletions", "lte": 3}, PR, True),
        ({"body": "data.object.amount_paid", "gte": 1000}, INVOICE, True),
        ({"body": "data.object.currency", "gt": "eur"}, INVOICE, True),  # strings compare
        ({"body": "data.object.currency", "gt": 5}, INVOICE, False),  # types differ: false
        ({"body": "ref", "prefix": "refs/heads/"}, PUSH, True),
        ({"body": "ref", "prefix": "refs/tags/"}, PUSH, False),
        ({"body": "data.object.customer_email", "suffix": "@example.com"}, INVOICE, True),
        ({"body": "tags", "contains": "vip"}, ORDER, True),
        ({"body": "repository.topics", "contains": "payments"}, PUSH, True),
        ({"body": "repository.topics", "contains": "frontend"}, PUSH, False),
        ({"body": "pull_request.labels[*].name", "contains": "release"}, PR, True),
        ({"body": "type", "glob": "invoice.*"}, INVOICE, True),
        ({"body": "type", "glob": "customer.*"}, INVOICE, False),
        ({"body": "line_items[0].sku", "glob": "IPOD-???-N"}, ORDER, True),
        ({"body": "ref", "regex": "refs/heads/(main|release-.+)"}, PUSH, True),
        ({"body": "ref", "regex": "heads/main"}, PUSH, False),  # anchored: the whole value
        ({"body": "shipping_address.country_code", "in": ["CA", "US"]}, ORDER, True),
        ({"body": "line_items[-1].quantity", "eq": 2}, ORDER, True),
        ({"body": "line_items[*].sku", "contains": "SHIRT-1"}, ORDER, True),
        ({"body": '"data".object."metadata".plan', "eq": "pro"}, INVOICE, True),
        ({"header": "X-GitHub-Event", "eq": "push"}, PUSH, True),
        ({"header": "x-github-event", "in": ["push", "release"]}, PR, False),
        ({"header": "X-Shopify-Topic", "glob": "orders/*"}, ORDER, True),
        ({"header": "x-missing", "exists": False}, PUSH, True),
    ],
)
def test_every_operator(spec: Any, facts: EventFacts, expected: bool) -> None:
    assert matches(spec, facts) is expected


def test_missing_paths_equal_nothing() -> None:
    for op, operand in [("eq", "x"), ("in", ["x"]), ("gt", 1), ("prefix", "x"), ("glob", "*"),
                        ("regex", ".*"), ("contains", "x"), ("exists", True)]:  # fmt: skip
        assert not matches({"body": "no.such.path", op: operand}, PUSH), op
    assert matches({"body": "no.such.path", "ne": "x"}, PUSH)
    assert matches({"body": "no.such.path", "not_in": ["x"]}, PUSH)
    assert matches({"body": "commits[7].id", "exists": False}, PUSH)


def test_combinators_and_which_condition_failed() -> None:
    only_main_prs = {
        "all": [
            {"header": "X-GitHub-Event", "eq": "pull_request"},
            {"body": "pull_request.base.ref", "eq": "main"},
            {"not": {"body": "pull_request.draft", "eq": True}},
            {"any": [
                {"body": "repository.full_name", "eq": "acme/web"},
                {"body": "pull_request.labels[*].name", "contains": "urgent"},
            ]},
        ]
    }  # fmt: skip
    f = compile_filter(only_main_prs)
    assert f.check(PR) is None
    assert f.check(PUSH) == 'all[0]: header x-github-event eq "pull_request"'
    assert f.headers == ("x-github-event",)
    assert f.reads_body

    draft = {**GITHUB_PULL_REQUEST, "pull_request": {**GITHUB_PULL_REQUEST["pull_request"],
                                                     "draft": True}}  # fmt: skip
    assert f.check(EventFacts(PR.headers, raw(draft))) == "all[2].not: its condition matched"
    other = {**GITHUB_PULL_REQUEST, "repository": {"full_name": "acme/api"}}
    why = f.check(EventFacts(PR.headers, raw(other)))
    assert why is not None
    assert why.startswith("all[3].any: none of 2 matched")


def test_non_json_bodies_match_only_header_conditions() -> None:
    form = EventFacts({"x-github-event": "push"}, b"payload=%7B%22ref%22%3A1%7D")
    assert matches({"header": "x-github-event", "eq": "push"}, form)
    assert compile_filter({"body": "ref", "exists": False}).check(form) == (
        "body ref exists: the body is not JSON"
    )
    assert matches({"not": {"body": "ref", "exists": True}}, form)
    deep = EventFacts({}, b"[" * 5000 + b"]" * 5000)  # beyond orjson's nesting limit
    assert not matches({"body": "a", "exists": False}, deep)


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"body": "ref", "equals": "x"}, "equals: unknown operator"),
        ({"all": [{"body": "ref", "eq": 1}, {"body": "ref", "like": "x"}]}, "all[1].like"),
        ({"any": [{"not": {"header": "x", "regex": "(a"}}]}, "any[0].not.regex: cannot compile"),
        ({"body": "ref", "regex": r"(a)\1"}, "regex: cannot compile"),
        ({"body": "ref", "glob": ""}, "glob: a pattern has 1 to 256"),
        ({"body": "ref[", "eq": 1}, "body: not a valid JMESPath expression"),
        ({"body": "to_string(@)", "eq": "x"}, "body: function not allowed here: to_string"),
        ({"body": "length(items)", "eq": 1}, "body: a filter path takes fields, [n] and [*]"),
        ({"body": "items[?v > `1`]", "exists": True}, "not filter projection"),
        ({"body": "ref", "eq": 1, "ne": 2}, "exactly one operator"),
        ({"body": "ref", "header": "x", "eq": 1}, 'one of "body" or "header"'),
        ({"body": "ref", "in": "main"}, "in: takes a list"),
        ({"body": "ref", "gt": [1]}, "gt: takes a number or a string"),
        ({"body": "ref", "exists": "yes"}, "exists: takes true or false"),
        ({"header": "bad header", "eq": "x"}, "header: not a header name"),
        ({"all": []}, "all: takes a non-empty list"),
        ({"all": [{"body": "a", "eq": 1}], "any": []}, "stands alone"),
        ([1, 2], "a condition is a JSON object"),
    ],
)
def test_invalid_filters_name_the_path(spec: Any, where: str) -> None:
    with pytest.raises(SpecError) as caught:
        compile_filter(spec)
    assert where in str(caught.value)


def test_hostile_filters_are_refused_or_bounded() -> None:
    nested: Any = {"body": "a", "eq": 1}
    for _ in range(20):
        nested = {"not": nested}
    with pytest.raises(SpecError, match="nest at most 16"):
        compile_filter(nested)
    with pytest.raises(SpecError, match="at most 64 conditions"):
        compile_filter({"any": [{"body": "a", "eq": i} for i in range(100)]})
    with pytest.raises(SpecError, match="at most 1024 characters"):
        compile_filter({"body": "a." * 600 + "b", "exists": True})
    with pytest.raises(SpecError, match="at most 256 parts"):
        compile_filter({"body": "[" + ",".join(["a"] * 300) + "]", "exists": True})
    with pytest.raises(SpecError, match="cannot compile"):  # RE2's memory bound
        compile_filter({"body": "a", "regex": "((a{1,100}){1,100}){1,100}"})

    # Classic catastrophic backtracking patterns run in linear time under RE2.
    evil = compile_filter({"body": "s", "regex": "(a+)+b"})
    started = time.perf_counter()
    assert evil.check(EventFacts({}, raw({"s": "a" * 100_000}))) is not None
    glob = compile_filter({"body": "s", "glob": "*a*a*a*a*a*a*b"})
    assert glob.check(EventFacts({}, raw({"s": "a" * 100_000}))) is not None
    huge = compile_filter({"body": "items[*].v", "contains": 99_999})
    assert huge.check(EventFacts({}, raw({"items": [{"v": i} for i in range(100_000)]}))) is None
    # Backtracking would take years; the bound only has to survive a busy machine.
    assert time.perf_counter() - started < 5.0


def test_a_subscription_validates_its_filter() -> None:
    sub = SubscriptionIn.model_validate(
        {"url": "https://x.example/", "sources": ["github"],
         "filter": {"body": "ref", "eq": "refs/heads/main"}}
    )  # fmt: skip
    assert sub.filter is not None
    assert sub.filter.check(PUSH) is None
    assert sub.model_dump(mode="json")["filter"] == {"body": "ref", "eq": "refs/heads/main"}
    with pytest.raises(ValueError, match=r"all\[0\]\.regex: cannot compile"):
        SubscriptionIn.model_validate(
            {"url": "https://x.example/", "sources": ["github"],
             "filter": {"all": [{"body": "ref", "regex": "("}]}}
        )  # fmt: skip


@pytest.mark.parametrize(
    "path",
    ["ref", "repository.owner.login", "commits[0].author.name", "commits[-1].id",
     "commits[*].id", "commits[*].author.username", "commits[*].added[*]", "commits[5].id",
     "repository.topics[*]", "ref.nope", "commits.id", "commits[0][0]", "@"],
)  # fmt: skip
def test_filter_paths_find_what_jmespath_finds(path: str) -> None:
    import jmespath

    from relay.domain.expressions import compile_path

    assert compile_path(path)(GITHUB_PUSH) == jmespath.search(path, GITHUB_PUSH)


@pytest.mark.parametrize("glob", ["refs/heads/*", "*.paid", "*acme*", "*", "**", "exact", "a*b",
                                  "?x", "***x", "a?c*"])  # fmt: skip
def test_globs_agree_with_fnmatch(glob: str) -> None:
    from fnmatch import fnmatchcase

    f = compile_filter({"body": "v", "glob": glob})
    for value in ["refs/heads/main", "invoice.paid", "the acme co", "", "exact", "ab", "axb",
                  "zx", "x", "abcd", "a.c"]:  # fmt: skip
        assert (f.check(EventFacts({}, raw({"v": value}))) is None) == fnmatchcase(value, glob)
