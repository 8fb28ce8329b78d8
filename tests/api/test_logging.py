"""The log lines an SRE reads, asserted as events with their context."""

from __future__ import annotations

import httpx
from structlog.testing import capture_logs

from relay.devtools.receiver import Receiver
from tests.conftest import AUTH, WorkerRun, create_source, create_subscription


def named(logs: list[dict[str, object]], event: str) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == event]


def access(line: dict[str, object]) -> tuple[object, ...]:
    """What uvicorn's access line said: the ingest lines stand in for it (it is off by default)."""
    return line["method"], line["path"], line["status"]


async def test_one_line_per_step_with_context(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    gone_receiver = Receiver()
    await create_source(api)
    sub = await create_subscription(api, receiver.url + "?token=s3cret")
    gone = await create_subscription(api, gone_receiver.url)
    receiver.script(503, 200)
    gone_receiver.script(410)
    with capture_logs() as logs:
        r = await api.post(
            "/ingest/github",
            content=b"{}",
            headers={"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1", "X-Request-ID": "req-7"},
        )
        event_id = r.json()["event_id"]
        await api.post("/ingest/github", content=b"{}", headers={"X-GitHub-Delivery": "d1"})
        await api.post("/ingest/missing", content=b"{}")
        await run_worker()
    gone_receiver.close()

    [accepted] = named(logs, "ingest.accepted")
    assert accepted["event_id"] == event_id
    assert accepted["request_id"] == "req-7"
    assert accepted["source"] == "github"
    assert accepted["event_type"] == "push"
    assert accepted["bytes"] == 2
    assert access(accepted) == ("POST", "/ingest/github", 202)
    [duplicate] = named(logs, "ingest.duplicate")
    assert duplicate["event_id"] == event_id
    assert access(duplicate) == ("POST", "/ingest/github", 200)
    [rejected] = named(logs, "ingest.rejected")
    assert rejected["reason"] == "unknown_source"
    assert access(rejected) == ("POST", "/ingest/missing", 404)
    # One line per webhook at INFO: its fan-out is a debug line when nothing went wrong.
    # (The operational events of the dead delivery and the disabled subscription too.)
    fanned = named(logs, "fanout.completed")
    assert {e["log_level"] for e in fanned} == {"debug"}
    assert [e["deliveries"] for e in fanned if e["event_id"] == event_id] == [2]

    lines = [
        *named(logs, "delivery.retry_scheduled"),
        *named(logs, "delivery.succeeded"),
        *named(logs, "delivery.dead"),
    ]
    assert {line["subscription_id"] for line in lines} == {sub["id"], gone["id"]}
    for line in lines:
        assert line["event_id"] == event_id
        assert str(line["delivery_id"]).startswith("dlv_")
        assert line["url_host"] == "127.0.0.1"
        assert isinstance(line["duration_ms"], float)
    [retry] = named(logs, "delivery.retry_scheduled")
    assert retry["status_code"] == 503
    assert retry["attempt"] == 1
    assert retry["log_level"] == "warning"
    assert retry["next_attempt_in_s"] >= 0
    [dead] = named(logs, "delivery.dead")
    assert dead["status_code"] == 410
    assert dead["log_level"] == "error"
    [disabled] = named(logs, "subscription.disabled")
    assert disabled["subscription_id"] == gone["id"]
    assert "s3cret" not in repr(logs)


async def test_secrets_never_reach_logs(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await create_source(api)
    with capture_logs() as logs:
        created = await create_subscription(api, receiver.url)
        await api.get("/api/subscriptions", headers=AUTH)
    assert created["secret"] not in repr(logs)
    assert "test-admin-token" not in repr(logs)


async def test_every_delivery_line_names_event_delivery_and_subscription(
    api: httpx.AsyncClient, run_worker: WorkerRun, receiver: Receiver
) -> None:
    from structlog.contextvars import merge_contextvars

    await create_source(api)
    sub = await create_subscription(api, receiver.url)
    await api.post(f"/api/subscriptions/{sub['id']}/pause", headers=AUTH)
    receiver.script(503)
    with capture_logs(processors=[merge_contextvars]) as logs:
        r = await api.post("/ingest/github", content=b"{}")
        await run_worker()  # parked while paused
        await api.post(f"/api/subscriptions/{sub['id']}/resume", headers=AUTH)
        await run_worker()  # 503, then success
    event_id = r.json()["event_id"]
    lines = [e for e in logs if str(e["event"]).startswith("delivery.")]
    names = {e["event"] for e in lines}
    assert {"delivery.retry_scheduled", "delivery.succeeded"} <= names
    # While paused, the lane's job found nothing to hand out and said why, once.
    [paused] = [e for e in logs if e["event"] == "lane.paused"]
    assert paused["subscription_id"] == sub["id"]
    assert paused["waiting"] == 1
    for line in lines:
        assert line["event_id"] == event_id, line
        assert str(line["delivery_id"]).startswith("dlv_"), line
        assert line["subscription_id"] == sub["id"], line
