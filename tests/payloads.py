"""Provider-shaped webhook bodies (trimmed from the providers' documented examples)."""

from __future__ import annotations

from typing import Any

import orjson

GITHUB_PUSH: dict[str, Any] = {
    "ref": "refs/heads/main",
    "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
    "after": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5",
    "created": False,
    "deleted": False,
    "forced": False,
    "repository": {
        "id": 35129377,
        "full_name": "acme/api",
        "private": False,
        "owner": {"login": "acme", "id": 21031067, "type": "Organization"},
        "default_branch": "main",
        "topics": ["payments", "backend"],
        "stargazers_count": 42,
    },
    "pusher": {"name": "octocat", "email": "octocat@github.com"},
    "sender": {"login": "octocat", "id": 583231, "type": "User"},
    "commits": [
        {"id": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5", "message": "Fix the build",
         "author": {"name": "Mona", "username": "mona"}, "added": [], "modified": ["README.md"]},
        {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "message": "Add tests",
         "author": {"name": "Octo", "username": "octo"}, "added": ["t.py"], "modified": []},
    ],
    "head_commit": {"id": "59b20b8d5c6ff8d09518454d4dd8b7b30f095ab5", "message": "Fix the build"},
}  # fmt: skip

GITHUB_PULL_REQUEST: dict[str, Any] = {
    "action": "opened",
    "number": 1347,
    "pull_request": {
        "id": 1,
        "number": 1347,
        "state": "open",
        "title": "Amazing new feature",
        "draft": False,
        "user": {"login": "octocat", "id": 1},
        "labels": [{"name": "bug"}, {"name": "release"}],
        "base": {"ref": "main", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
        "head": {"ref": "new-topic", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e"},
        "additions": 100,
        "deletions": 3,
    },
    "repository": {"id": 1296269, "full_name": "acme/web", "private": True},
    "sender": {"login": "octocat", "id": 1},
}

STRIPE_INVOICE_PAID: dict[str, Any] = {
    "id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    "object": "event",
    "api_version": "2022-11-15",
    "created": 1686089970,
    "type": "invoice.paid",
    "livemode": False,
    "data": {
        "object": {
            "id": "in_1NG8Dt2eZvKYlo2C0v0Vd2Xn",
            "object": "invoice",
            "amount_due": 2000,
            "amount_paid": 2000,
            "currency": "usd",
            "customer": "cus_NxMnz0wV9ASfVx",
            "customer_email": "jenny.rosen@example.com",
            "paid": True,
            "status": "paid",
            "lines": {"data": [{"id": "il_1", "amount": 2000, "description": "1 x Pro"}]},
            "metadata": {"plan": "pro"},
        }
    },
}

SHOPIFY_ORDER_CREATE: dict[str, Any] = {
    "id": 820982911946154508,
    "email": "jon@example.com",
    "created_at": "2026-11-24T10:00:00-05:00",
    "currency": "CAD",
    "total_price": "403.00",
    "financial_status": "paid",
    "tags": "wholesale, vip",
    "shipping_address": {"country_code": "CA", "province_code": "ON", "city": "Ottawa"},
    "line_items": [
        {"id": 866550311766439020, "sku": "IPOD-342-N", "quantity": 1, "price": "199.00"},
        {"id": 141249953214522974, "sku": "SHIRT-1", "quantity": 2, "price": "102.00"},
    ],
    "customer": {"id": 115310627314723954, "email": "jon@example.com", "orders_count": 3},
}


def raw(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)
