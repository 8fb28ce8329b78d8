"""relay.cli.apply without I/O: parsing, ${ENV:...} substitution, validation and the plan."""

from __future__ import annotations

from typing import Any

import pytest

from relay.cli.apply import (
    ApplyError,
    Change,
    Desired,
    desired_state,
    parse,
    plan,
    substitute_env,
    summary,
)
from relay.domain.models import Source, SourceIn, Subscription, SubscriptionIn

# --- what the API shows, built from the same models the API answers with -----------------


def api_source(name: str, **spec: Any) -> dict[str, Any]:
    fields = SourceIn.model_validate(spec).model_dump()
    return Source(**fields, name=name, created_at=1, updated_at=2).public()


def api_subscription(sub_id: str, **spec: Any) -> dict[str, Any]:
    fields = SubscriptionIn.model_validate(spec).model_dump()
    sub = Subscription(**fields, id=sub_id, secret="whsec_x", created_at=1, updated_at=2)
    return sub.public().model_dump(mode="json")


GITHUB = {
    "event_type_header": "X-GitHub-Event",
    "verification": {"scheme": "github", "secrets": ["gh-secret-1", "gh-secret-2"]},
}
BILLING = {"url": "https://billing.example", "sources": ["github"], "event_types": ["push"]}


def desired(**subscriptions: dict[str, Any]) -> Desired:
    return desired_state({"sources": {"github": GITHUB}, "subscriptions": subscriptions})


def actions(changes: list[Change]) -> list[tuple[str, str, str]]:
    return [(c.kind, c.action, c.name) for c in changes]


# --- parse ---------------------------------------------------------------------------------


def test_toml_and_yaml_read_the_same() -> None:
    toml = '[sources.github]\nevent_type_header = "X-GitHub-Event"\n'
    yaml = "sources:\n  github:\n    event_type_header: X-GitHub-Event\n"
    assert parse(toml, ".toml") == parse(yaml, ".yaml") == parse(yaml, ".YML")


@pytest.mark.parametrize(
    ("text", "suffix", "message"),
    [
        ("a = 1", ".json", "unknown file type '.json'"),
        ("[sources", ".toml", "cannot parse the file"),
        ("sources: [a", ".yaml", "cannot parse the file"),
        ("- a\n- b\n", ".yaml", "must hold a table"),
    ],
)
def test_unreadable_documents(text: str, suffix: str, message: str) -> None:
    with pytest.raises(ApplyError, match=message):
        parse(text, suffix)


def test_an_empty_file_is_an_empty_state() -> None:
    assert desired_state(parse("", ".yaml")) == Desired()


# --- ${ENV:NAME} ---------------------------------------------------------------------------


def test_env_references_are_replaced_anywhere_in_strings() -> None:
    doc = {
        "a": "${ENV:ONE}",
        "b": ["Bearer ${ENV:TWO}", 3, True, None],
        "c": {"d": "${ENV:ONE}-${ENV:TWO}", "e": "no reference, $HOME stays"},
    }
    got = substitute_env(doc, {"ONE": "1", "TWO": "zwei"})
    assert got == {
        "a": "1",
        "b": ["Bearer zwei", 3, True, None],
        "c": {"d": "1-zwei", "e": "no reference, $HOME stays"},
    }
    assert doc["a"] == "${ENV:ONE}"  # the input is not changed


def test_every_missing_variable_is_named_and_no_value_is_shown() -> None:
    doc = {"x": "${ENV:SET} ${ENV:B_MISSING}", "y": ["${ENV:A_MISSING}"]}
    with pytest.raises(ApplyError) as err:
        substitute_env(doc, {"SET": "hunter2"})
    assert str(err.value) == "environment variable(s) not set: A_MISSING, B_MISSING"


def test_an_empty_variable_is_set() -> None:
    assert substitute_env("${ENV:EMPTY}", {"EMPTY": ""}) == ""


@pytest.mark.parametrize("value", ["${ENV:}", "${ENV:has-dash}", "${ENV:OPEN"])
def test_malformed_references_are_errors(value: str) -> None:
    with pytest.raises(ApplyError, match="malformed"):
        substitute_env({"k": value}, {})


# --- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"source": {}}, "unknown top-level key"),
        ({"sources": ["github"]}, "sources: must map names to tables"),
        ({"sources": {"github": "x"}}, "sources.github: must be a table"),
        ({"sources": {"bad name": {}}}, "sources.bad name: not a valid source name"),
        ({"sources": {"s": {"verification": {"scheme": "nope"}}}}, r"sources\.s\.verification"),
        ({"subscriptions": {"b": {**BILLING, "description": "x"}}}, "the name is the desc"),
        ({"subscriptions": {"b": {"sources": ["github"]}}}, r"subscriptions\.b\.url: Field req"),
        ({"subscriptions": {"b": {**BILLING, "colour": "red"}}}, r"subscriptions\.b\.colour"),
    ],
)
def test_invalid_files_fail_before_anything_is_sent(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ApplyError, match=message):
        desired_state(doc)


def test_validation_errors_do_not_echo_values() -> None:
    doc = {"subscriptions": {"b": {**BILLING, "url": "https://user:s3cr3t@[bad"}}}
    with pytest.raises(ApplyError) as err:
        desired_state(doc)
    assert "s3cr3t" not in str(err.value)


# --- the plan ------------------------------------------------------------------------------


def test_everything_is_created_on_an_empty_relay() -> None:
    changes = plan(desired(billing=BILLING), [], [])
    assert actions(changes) == [
        ("source", "create", "github"),
        ("subscription", "create", "billing"),
    ]
    assert changes[0].body == GITHUB  # the secrets themselves go to the API
    assert changes[1].body == {**BILLING, "description": "billing"}


def test_nothing_changes_when_the_relay_matches() -> None:
    # The API normalises the URL (a trailing slash) and fills defaults: still equal.
    current = [api_subscription("sub_1", **BILLING, description="billing")]
    assert current[0]["url"] == "https://billing.example/"
    changes = plan(desired(billing=BILLING), [api_source("github", **GITHUB)], current)
    assert actions(changes) == [
        ("source", "unchanged", "github"),
        ("subscription", "unchanged", "billing"),
    ]
    assert summary(changes) == "0 created, 0 updated, 2 unchanged"


def test_only_changed_fields_are_patched_on_the_same_subscription() -> None:
    current = [api_subscription("sub_1", **BILLING, description="billing", timeout_s=3)]
    wanted = {**BILLING, "event_types": ["push", "issues"], "headers": {"X-Team": "pay"}}
    [_, change] = plan(desired(billing=wanted), [api_source("github", **GITHUB)], current)
    assert (change.action, change.id) == ("update", "sub_1")
    # timeout_s is not in the file: back to the default.
    assert change.fields == ("event_types", "headers", "timeout_s")
    assert change.body == {
        "event_types": ["push", "issues"],
        "headers": {"X-Team": "pay"},
        "timeout_s": None,
    }


def test_enabled_is_managed_only_when_the_file_sets_it() -> None:
    current = [api_subscription("sub_1", **BILLING, description="billing", enabled=False)]
    source = [api_source("github", **GITHUB)]
    [_, left_alone] = plan(desired(billing=BILLING), source, current)
    assert left_alone.action == "unchanged"
    [_, enabled] = plan(desired(billing={**BILLING, "enabled": True}), source, current)
    assert (enabled.action, enabled.body) == ("update", {"enabled": True})


def test_two_subscriptions_with_the_managed_name_are_an_error() -> None:
    twins = [
        api_subscription("sub_1", **BILLING, description="billing"),
        api_subscription("sub_2", **BILLING, description="billing"),
    ]
    with pytest.raises(ApplyError, match=r"sub_1, sub_2"):
        plan(desired(billing=BILLING), [], twins)


def test_sources_compare_visible_fields_and_the_number_of_secrets() -> None:
    def with_secrets(*secrets: str) -> dict[str, Any]:
        verification = {"scheme": "github", "secrets": list(secrets)}
        return api_source("github", **{**GITHUB, "verification": verification})

    [change] = plan(desired(), [with_secrets("other", "values")], [])
    assert change.action == "unchanged"  # write-only: a changed value cannot be seen

    [change] = plan(desired(), [with_secrets("gh-secret-1")], [])
    assert (change.action, change.fields) == ("update", ("verification",))

    described = api_source("github", **GITHUB, description="old")
    [change] = plan(desired(), [described], [])
    assert (change.action, change.fields) == ("update", ("description",))


def test_push_secrets_resends_sources_that_have_secrets() -> None:
    doc = {"sources": {"github": GITHUB, "open": {}}}
    current = [api_source("github", **GITHUB), api_source("open")]
    changes = plan(desired_state(doc), current, [], push_secrets=True)
    assert [(c.action, c.fields) for c in changes] == [
        ("update", ("verification.secrets",)),
        ("unchanged", ()),
    ]


def test_prune_deletes_what_the_file_does_not_name_subscriptions_first() -> None:
    sources = [api_source("github", **GITHUB), api_source("old")]
    subs = [
        api_subscription("sub_1", **BILLING, description="billing"),
        api_subscription("sub_2", **BILLING, description="by hand"),
        api_subscription("sub_3", **BILLING),
    ]
    kept = plan(desired(billing=BILLING), sources, subs)
    assert [c.action for c in kept] == ["unchanged", "unchanged"]

    pruned = plan(desired(billing=BILLING), sources, subs, prune=True)
    assert [(c.action, c.name, c.id) for c in pruned[2:]] == [
        ("delete", "", "sub_3"),
        ("delete", "by hand", "sub_2"),
        ("delete", "old", None),
    ]
    assert summary(pruned) == "0 created, 0 updated, 2 unchanged, 3 deleted"


def test_changes_never_show_their_bodies() -> None:
    [change] = plan(desired(), [], [])
    assert "gh-secret" not in repr(change)
    assert change.body == GITHUB


def test_masked_credential_headers_compare_equal_unless_secrets_are_pushed() -> None:
    with_token = {**BILLING, "headers": {"Authorization": "Bearer new", "X-Team": "pay"}}
    # The relay holds an older token; it shows only "[REDACTED]" for it.
    current = [
        api_subscription(
            "sub_1",
            **{**BILLING, "headers": {"Authorization": "Bearer old", "X-Team": "pay"}},
            description="billing",
        )
    ]
    assert current[0]["headers"]["Authorization"] == "[REDACTED]"
    sources = [api_source("github", **GITHUB)]
    [_, change] = plan(desired(billing=with_token), sources, current)
    assert change.action == "unchanged"
    [_, change] = plan(desired(billing=with_token), sources, current, push_secrets=True)
    assert change.action == "update"
    assert change.body == {"headers": {"Authorization": "Bearer new", "X-Team": "pay"}}


def test_filters_and_transforms_are_managed_like_any_field() -> None:
    shaped = {
        **BILLING,
        "filter": {"all": [{"body": "ref", "eq": "refs/heads/main"},
                           {"header": "X-GitHub-Event", "in": ["push"]}]},
        "transform": {"body": "{ref: ref}", "headers": {"X-Repo": "{{ body.repository.name }}"}},
    }  # fmt: skip
    current = [api_subscription("sub_1", **shaped, description="billing")]
    changes = plan(desired(billing=shaped), [api_source("github", **GITHUB)], current)
    assert summary(changes) == "0 created, 0 updated, 2 unchanged"

    edited = {**shaped, "filter": {"body": "ref", "prefix": "refs/tags/"}}
    [_, change] = plan(desired(billing=edited), [api_source("github", **GITHUB)], current)
    assert change.fields == ("filter",)
    assert change.body == {"filter": {"body": "ref", "prefix": "refs/tags/"}}

    with pytest.raises(ApplyError, match=r"subscriptions\.b\.filter: .*any\[0\]\.regex"):
        desired_state({"subscriptions": {"b": {**BILLING, "filter": {"any": [
            {"body": "ref", "regex": "(unclosed"}]}}}})  # fmt: skip


def test_a_sources_body_cap_is_applied_and_compared() -> None:
    capped = {**GITHUB, "max_body_bytes": 5_000_000}
    doc = desired_state(parse("[sources.github]\nmax_body_bytes = 5000000\n", ".toml"))
    assert doc.sources["github"] == {"max_body_bytes": 5_000_000}
    [change] = plan(
        desired_state({"sources": {"github": capped}}), [api_source("github", **GITHUB)], []
    )
    assert (change.action, change.fields) == ("update", ("max_body_bytes",))
    [same] = plan(
        desired_state({"sources": {"github": capped}}), [api_source("github", **capped)], []
    )
    assert same.action == "unchanged"
    with pytest.raises(ApplyError, match=r"sources\.github\.max_body_bytes"):
        desired_state({"sources": {"github": {"max_body_bytes": 0}}})
