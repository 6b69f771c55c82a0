-- Counting while Redis is unreachable (issue 8): checks are decided against the
-- persisted usage history plus what was counted here meanwhile, one row per Redis
-- counter, and every unit counted here is added to Redis once it is back.

CREATE TABLE fallback_counters (
    -- The Redis counter this row stands in for (`tollgate:{root}:c:…`).
    counter_key  TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    resource     TEXT NOT NULL,
    series       TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL,
    -- Counted here and not yet in Redis (negative: refunds not yet applied there).
    pending      BIGINT NOT NULL DEFAULT 0,
    -- Bumped each time a part of `pending` reaches Redis: it names that step, so a
    -- step retried after a crash is applied to Redis once.
    version      BIGINT NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX fallback_counters_pending ON fallback_counters (updated_at) WHERE pending <> 0;

-- Settlements applied here, so a retried one is applied once (as Redis remembers them).
CREATE TABLE fallback_settlements (
    id         TEXT PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Budgets given back (POST /v1/leases `previous`) while Redis was unreachable: their
-- unspent part is refunded once Redis is back.
CREATE TABLE fallback_returns (
    -- The returned lease's record in Redis (`tollgate:{root}:b:<lease id>`).
    record_key TEXT PRIMARY KEY,
    spent      BIGINT NOT NULL CHECK (spent >= 0),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
