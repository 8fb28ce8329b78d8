"""Every Redis key the relay uses, and who writes each hash field.

Nothing outside :mod:`relay.storage` spells a key; routes and use cases ask the aggregate
stores (``store.deliveries.list_dead(...)``) instead.

Key layout (prefix ``relay:``)::

    source:{name}         hash  the source (fields below)
    sources               set   source names
    sub:{id}              hash  the subscription (fields below)
    sub:{id}:failing      str   ms of the first failure in an unbroken run of failures;
                                expires after RELAY_DISABLE_AFTER_FAILING_S without one [TTL]
    subs                  set   subscription ids
    subs:src:{source}     set   subscription ids listening to a source ("*": every source)
    evt:{id}              str   event metadata (JSON; never changes)                  [TTL]
    evt:{id}:body         str   the raw body, stored once                             [TTL]
    evt:{id}:dlv          str   delivery ids of the event, each followed by a space   [TTL]
                                (a list for events fanned out by earlier versions)
    evt:{id}:skipped      hash  subscription id -> the filter condition that skipped it
                                (written by fanout.lua)                               [TTL]
    evt:{id}:fanout       str   while a fan-out in chunks is under way: the id of the last
                                subscription a committed chunk covered (fanout.lua) [TTL]
    events                zset  every event id (lexical: ids sort by time)
    events:src:{source}   zset  event ids of one source (lexical)
    events:unfanned       zset  events accepted but not yet fanned out, by receipt ms
    idem:{source}:{key}   str   the first event id for an idempotency key             [TTL]
    dlv:{id}              hash  delivery state (fields below)                         [TTL]
    dlv:{id}:att          list  attempt records (JSON)                                [TTL]
    dlv:all               zset  every delivery id (lexical)
    dlv:sub:{id}          zset  delivery ids of one subscription (lexical)
    dlv:dead              zset  dead deliveries, the dead-letter index (lexical)
    dlv:dead:{sub id}     zset  dead deliveries of one subscription (lexical)
    lane:{sub id}         zset  the subscription's deliveries waiting for an attempt, by due
                                ms (ties: by id, which is creation order)
    lane:{sub id}:flight  zset  its deliveries being attempted, by lease expiry (ms)
    lane:{sub id}:state   hash  the lane's job and backpressure (fields below)
    lane:{sub id}:heads   hash  FIFO lanes: ordering key -> the delivery heading it
    lane:{sub id}:q:{key} list  FIFO lanes: deliveries waiting behind that key's head
    lanes                 set   subscription ids whose lane has work
    subs:rev              str   bumped by every subscription change (fan-out's cache)
    workers               zset  worker ids by their last heartbeat (ms)
    workers:picking       zset  the same, of workers taking new jobs (not stopping)
    stats:{minute}        hash  attempt outcomes recorded in that minute (minute = ms //
                                60000): succeeded, failed, dead; for the dashboard  [TTL]
    token:{id}            str   an API token (JSON): name, role, sources, expiry and the
                                HMAC-SHA256 digest of its secret (never the secret)
    tokens                zset  token ids by when each was last used (ms; 0: never),
                                written at most once a minute per token and process
    ui:session:{digest}   str   a dashboard session: its CSRF token, by the SHA-256 of
                                the cookie (the cookie itself is never stored)      [TTL]
    ops:alerts            hash  "{sub id}:backlog" / "{sub id}:dead_letters" -> the count
                                that crossed its threshold, until it recovers
                                (ops_thresholds.lua)
    indexes               set   names of the per-source and per-subscription indexes
    listeners             zset  `relay listen` subscriptions by the ms their stream was
                                last seen alive (the sweeper removes the silent ones)
    listen:answer:{dlv}   list  a listener's report taken by an API process other than the
                                one whose stream waits for it (that one polls it)   [TTL]
    tail                  str   set while a `relay tail` is connected             [TTL]
    tail:events           chan  pub/sub: events accepted and attempts recorded, for tails

ARQ's own keys (``arq:job:{id}``, the queue) are written only through ARQ, except that
``lib/lanes.lua`` arms a lane's job by writing its job record and queue entry exactly as
``ArqRedis.enqueue_job`` does (arq 0.28, pinned; ``tests/storage/test_lanes.py`` proves the
worker runs such jobs), and ``take_jobs.lua`` marks due lane jobs in progress (``arq:in-progress:
{id}``) as arq's ``Worker.start_jobs`` does, several in one step.

Records expire on their own (``RELAY_RETENTION_DAYS``, set when they are written); the
indexes hold only ids, sorted by time, and are trimmed by range, never by scanning keys.

Hash fields and their writers. Scripts live in ``lua/``; ``lib/`` holds Lua shared by
several scripts, so a field written from two scripts still has one piece of code writing it.

========================  ======================================  ==========================
``source:{name}``         meaning                                 written by
========================  ======================================  ==========================
config                    the source as JSON (secrets included)   sources.put (MULTI)
rev                       bumped on every change; ingest refuses  sources.put (MULTI)
                          a stale cached revision
========================  ======================================  ==========================

========================  ======================================  ==========================
``sub:{id}``              meaning                                 written by
========================  ======================================  ==========================
config                    the subscription as JSON, without the   save_subscription.lua
                          state fields below
enabled, disabled_reason  "1"/"0" and why it was disabled ("")    lib/subscription_state.lua
                                                                  (from save_subscription
                                                                  and record_attempt)
paused                    "1"/"0"; always "1" for a `relay listen` pause.lua
                          subscription: only its listener's
                          stream drains the lane (claim_lane)
========================  ======================================  ==========================

========================  ======================================  ==========================
``lane:{sub}:state``      meaning                                 written by
========================  ======================================  ==========================
job, seq                  the armed ARQ job id (absent: idle);    lib/lanes.lua (arm_lane),
                          the counter job ids are made from       yield_lane, arm_lanes
running                   the job that started last (its queue    start_lane; release_lane
                          entry was moved past its lease)         (lib) clears
holder                    the worker (heartbeat id) running the   claim_lane sets; arm_lane,
                          armed job; arm_lanes takes the lane     release_lane (lib) clear
                          when it stops beating
hold_until, hold_reason   ms before which the lane hands out      record_attempt (429/503
                          nothing, and why (a receiver's          Retry-After, breaker open);
                          Retry-After or 429, the breaker open)   lib/lanes.lua release_hold
                                                                  (resume, reopen,
                                                                  release_lane) clears
tripped, trips            the circuit breaker opened (absent:     record_attempt, as
                          closed), times in a row                 relay.domain.breaker decides
bw, bo, bf, po, pf        the breaker's window: this bucket's     record_attempt counts;
                          number, its successes and failures,     release_hold and a close
                          the bucket before's                     clear
tokens, tokens_at         the rate limit's token bucket           claim_lane
========================  ======================================  ==========================

``dlv:{id}`` is a state machine (``relay.domain.models.DeliveryStatus``); each transition
is one script, and each script writes only the fields of its own transition. A field that
holds its default is not written (every byte of a pending delivery counts): no
``retry_base`` is 0, no ``updated_at`` is ``created_at``, no ``mode`` is reliable
(``attempts`` is written from the start: workers of earlier versions check it).

========================  ======================================  ==========================
``dlv:{id}``              meaning                                 written by
========================  ======================================  ==========================
event_id, subscription_id what it delivers, to whom;              fanout.lua (once)
mode, created_at,         best_effort (absent: reliable); when made;
expires_at, ordered, okey when its records expire; FIFO and its
                          ordering key
status                    pending, delivering, succeeded, failed  fanout (pending, or
                          (will retry) or dead                    delivering when inline),
                                                                  claim_lane (delivering),
                                                                  record_attempt (outcome),
                                                                  reopen (pending)
attempts                  attempts recorded so far                record_attempt.lua
next_attempt_at           ms the next attempt is due ("": none)   fanout, record_attempt,
                                                                  reopen
next_trigger              "manual" when an operator asked for     reopen sets, record_attempt
                          the next attempt                        clears
updated_at                ms of the last transition               every transition
lease_until               ms a claim expires (0: not claimed)     fanout (inline) and
                                                                  claim_lane set;
                                                                  record_attempt and reopen
                                                                  clear
last_status_code,         what the last attempt got               record_attempt.lua
last_error
first_attempt_at          ms the first attempt was recorded       record_attempt.lua
retry_base,               where the retry policy starts counting  reopen
retry_started_at          (attempts, ms): the first attempt or
                          the last manual retry/replay
gen                       bumped by every reopen (how many times  reopen.lua
                          an operator put it back on the road)
========================  ======================================  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "relay:"

# ARQ's queue (a sorted set of job ids); its job records use ARQ's own ``arq:job:`` keys.
DEFAULT_QUEUE = PREFIX + "queue"


@dataclass(frozen=True, slots=True)
class JobQueue:
    """Where ARQ keeps its queue and job records. Arming a lane writes a job record there;
    the names come from ``arq.constants`` through ``relay.delivery.queue``, so storage needs
    no ARQ import."""

    queue_key: str
    job_prefix: str
    in_progress_prefix: str


class Keys:
    """Key names, in one place so no other module spells a Redis key."""

    sources = PREFIX + "sources"
    subs = PREFIX + "subs"
    events = PREFIX + "events"
    unfanned = PREFIX + "events:unfanned"
    deliveries = PREFIX + "dlv:all"
    dead = PREFIX + "dlv:dead"
    lanes = PREFIX + "lanes"
    subs_rev = PREFIX + "subs:rev"
    workers = PREFIX + "workers"
    picking_workers = PREFIX + "workers:picking"
    ops_alerts = PREFIX + "ops:alerts"
    # A short-lived write that tells whether a full Redis takes writes again.
    write_probe = PREFIX + "probe"
    listeners = PREFIX + "listeners"
    tail = PREFIX + "tail"
    tail_channel = PREFIX + "tail:events"
    # Every per-source and per-subscription index ever written to, so trimming reaches the
    # indexes of deleted sources and subscriptions too.
    indexes = PREFIX + "indexes"

    # Written by versions before lanes; read once, by the upgrade at worker start.
    legacy_due = PREFIX + "dlv:due"

    @staticmethod
    def legacy_parked(sub_id: str) -> str:
        return f"{PREFIX}dlv:paused:{sub_id}"

    @staticmethod
    def source_events(source: str) -> str:
        return f"{PREFIX}events:src:{source}"

    @staticmethod
    def sub_deliveries(sub_id: str) -> str:
        return f"{PREFIX}dlv:sub:{sub_id}"

    @staticmethod
    def sub_dead(sub_id: str) -> str:
        return f"{PREFIX}dlv:dead:{sub_id}"

    @staticmethod
    def dead_letters(sub_id: str | None) -> str:
        """The dead-letter index of one subscription, or of all."""
        return Keys.sub_dead(sub_id) if sub_id else Keys.dead

    @staticmethod
    def lane(sub_id: str, part: str | None = None) -> str:
        """A subscription's lane, or one of its parts (flight, state, heads)."""
        return f"{PREFIX}lane:{sub_id}" + (f":{part}" if part else "")

    @staticmethod
    def listen_answer(delivery_id: str) -> str:
        return f"{PREFIX}listen:answer:{delivery_id}"

    @staticmethod
    def minute_stats(minute: int) -> str:
        return f"{PREFIX}stats:{minute}"

    tokens = PREFIX + "tokens"

    @staticmethod
    def token(token_id: str) -> str:
        return f"{PREFIX}token:{token_id}"

    @staticmethod
    def ui_session(digest: str) -> str:
        return f"{PREFIX}ui:session:{digest}"

    @staticmethod
    def source(name: str) -> str:
        return f"{PREFIX}source:{name}"

    @staticmethod
    def sub(sub_id: str) -> str:
        return f"{PREFIX}sub:{sub_id}"

    @staticmethod
    def sub_failing(sub_id: str) -> str:
        return f"{PREFIX}sub:{sub_id}:failing"

    @staticmethod
    def subs_for(source: str) -> str:
        return f"{PREFIX}subs:src:{source}"

    @staticmethod
    def event(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}"

    @staticmethod
    def event_body(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:body"

    @staticmethod
    def event_deliveries(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:dlv"

    @staticmethod
    def event_skipped(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:skipped"

    @staticmethod
    def event_fanout_cursor(event_id: str) -> str:
        return f"{PREFIX}evt:{event_id}:fanout"

    @staticmethod
    def idempotency(source: str, key: str) -> str:
        return f"{PREFIX}idem:{source}:{key}"

    @staticmethod
    def delivery(delivery_id: str) -> str:
        return f"{PREFIX}dlv:{delivery_id}"

    @staticmethod
    def attempts(delivery_id: str) -> str:
        return f"{PREFIX}dlv:{delivery_id}:att"
