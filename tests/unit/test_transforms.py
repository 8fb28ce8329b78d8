"""Transforms on provider-shaped payloads, without Redis."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from relay.domain.filters import EventFacts, SpecError
from relay.domain.models import SubscriptionIn
from relay.domain.transforms import TransformFailed, apply, compile_transform
from tests.payloads import GITHUB_PUSH, SHOPIFY_ORDER_CREATE, STRIPE_INVOICE_PAID, raw

MB = 1024 * 1024


def facts(payload: Any, **headers: str) -> EventFacts:
    body = payload if isinstance(payload, bytes) else raw(payload)
    return EventFacts(headers, body, event_id="evt_1", source="github", event_type="push")


def test_body_projection_and_header_templates() -> None:
    t = compile_transform(
        {
            "body": "{repo: repository.full_name, branch: ref, commits: commits[*].id}",
            "headers": {
                "X-Repo": "{{ body.repository.full_name }}",
                "X-Kind": "gh-{{ event.type }}/{{ event.source }}",
                "X-Delivery": '{{ headers."x-github-delivery" }}',
                "X-Absent": "{{ body.no.such }}",
            },
        }
    )
    shaped = apply(t, facts(GITHUB_PUSH, **{"x-github-delivery": "d-1"}), max_bytes=MB)
    assert orjson.loads(shaped.body) == {
        "repo": "acme/api",
        "branch": "refs/heads/main",
        "commits": [c["id"] for c in GITHUB_PUSH["commits"]],
    }
    assert shaped.content_type == "application/json"
    assert shaped.headers == {"X-Repo": "acme/api", "X-Kind": "gh-push/github",
                              "X-Delivery": "d-1"}  # fmt: skip


def test_stripe_and_shopify_projections() -> None:
    invoice = compile_transform(
        {"body": "data.object.{invoice: id, cents: amount_paid, email: customer_email}"}
    )
    assert orjson.loads(apply(invoice, facts(STRIPE_INVOICE_PAID), max_bytes=MB).body) == {
        "invoice": "in_1NG8Dt2eZvKYlo2C0v0Vd2Xn", "cents": 2000,
        "email": "jenny.rosen@example.com",
    }  # fmt: skip
    order = compile_transform({"body": "{id: id, skus: line_items[?quantity > `1`].sku}"})
    assert orjson.loads(apply(order, facts(SHOPIFY_ORDER_CREATE), max_bytes=MB).body) == {
        "id": 820982911946154508, "skus": ["SHIRT-1"],
    }  # fmt: skip


def test_header_values_stay_valid_header_values() -> None:
    t = compile_transform({"headers": {"X-Who": "{{ body.who }}", "X-Obj": "{{ body.obj }}"}})
    shaped = apply(t, facts({"who": "Zoë\r\nX-Evil: 1", "obj": {"a": 1}}), max_bytes=MB)
    assert shaped.headers == {"X-Who": "Zo%C3%AB%0D%0AX-Evil: 1", "X-Obj": '{"a":1}'}
    assert shaped.body == raw({"who": "Zoë\r\nX-Evil: 1", "obj": {"a": 1}})  # untouched


def test_version_names_the_transform_and_is_stable() -> None:
    a = compile_transform({"body": "ref", "headers": {"X-A": "{{ event.id }}"}})
    b = compile_transform({"headers": {"X-A": "{{ event.id }}"}, "body": "ref"})
    c = compile_transform({"body": "after"})
    assert a.version == b.version != c.version
    assert apply(a, facts(GITHUB_PUSH), max_bytes=MB) == apply(b, facts(GITHUB_PUSH), max_bytes=MB)


def test_non_json_body() -> None:
    only_headers = compile_transform({"headers": {"X-Kind": "{{ event.type }}"}})
    shaped = apply(only_headers, facts(b"a=1&b=2"), max_bytes=MB)
    assert (shaped.body, shaped.headers) == (b"a=1&b=2", {"X-Kind": "push"})
    with pytest.raises(TransformFailed, match="not JSON"):
        apply(compile_transform({"body": "a"}), facts(b"a=1&b=2"), max_bytes=MB)


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"body": "a["}, "body: not a valid JMESPath expression"),
        ({"body": "to_string(to_string(@))"}, "function not allowed here: to_string"),
        ({"body": "[" + ",".join(["@"] * 300) + "]"}, "at most 256 parts"),
        ({"headers": {"X-A": "{{ a[ }}"}}, "headers.X-A: not a valid JMESPath"),
        ({"headers": {"X-A": "{{ a "}}, "headers.X-A: unbalanced"),
        ({"headers": {"bad name": "x"}}, "headers.bad name: not a header name"),
        ({"code": "return 1"}, "code: unknown field"),
        ({}, "a transform is an object"),
    ],
)
def test_invalid_transforms_name_the_path(spec: Any, where: str) -> None:
    with pytest.raises(SpecError) as caught:
        compile_transform(spec)
    assert where in str(caught.value)


def test_relay_headers_cannot_be_templated() -> None:
    with pytest.raises(ValueError, match="cannot be templated: webhook-signature"):
        SubscriptionIn.model_validate(
            {"url": "https://x.example/", "sources": ["*"],
             "transform": {"headers": {"webhook-signature": "v1,{{ body.x }}"}}}
        )  # fmt: skip


def test_hostile_transforms_fail_fast_with_a_reason() -> None:
    big = {"items": ["x" * 100] * 4000}  # ~400 KB
    started = time.perf_counter()
    # A result that repeats its input beyond the cap is measured, not serialised.
    blowup = compile_transform({"body": "[@, @, @, {a: @, b: @, c: [@, @]}]"})
    with pytest.raises(TransformFailed, match=f"exceeds {MB} bytes"):
        apply(blowup, facts(big), max_bytes=MB)
    # orjson reads 1,024 levels but writes 254: such a body passes through, reshaped it dies.
    deep = b'{"deep": ' + b"[" * 600 + b'"x"' + b"]" * 600 + b"}"
    with pytest.raises(TransformFailed, match="cannot be written as JSON"):
        apply(compile_transform({"body": "@"}), facts(deep), max_bytes=MB)
    huge = compile_transform({"body": "length(items[?length(@) > `5`])"})
    assert apply(huge, facts({"items": ["abcdefg"] * 20_000}), max_bytes=MB).body == b"20000"
    assert time.perf_counter() - started < 10.0
