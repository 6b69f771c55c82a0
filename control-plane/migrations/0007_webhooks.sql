-- Threshold notifications (issue 17): webhook subscriptions; the crossings of their
-- thresholds, one row per counter window and threshold however many control planes see
-- it; and the outbox of deliveries, written in the same statement as the crossing that
-- causes them, with every attempt to deliver each.

CREATE TABLE webhook_subscriptions (
    id          TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9_-]{1,64}$'),
    url         TEXT NOT NULL CHECK (url ~ '^https?://'),
    -- The signing secret (`whsec_…`). Write-only: the API never returns it; the
    -- deliverer reads it to sign.
    secret      TEXT NOT NULL,
    -- Percentages of the quota, ascending, and whether the hard limit is told.
    percents    INTEGER[] NOT NULL DEFAULT '{}',
    hard        BOOLEAN NOT NULL DEFAULT false,
    -- Filters; empty arrays mean every resource, every tier. No foreign key to tenants:
    -- a tenant nobody registered is decided by the default tier, and may be watched.
    tenant_id   TEXT NULL,
    subtree     BOOLEAN NOT NULL DEFAULT false,
    resources   TEXT[] NOT NULL DEFAULT '{}',
    tiers       TEXT[] NOT NULL DEFAULT '{}',
    enabled     BOOLEAN NOT NULL DEFAULT true,
    description TEXT NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cardinality(percents) > 0 OR hard)
);

-- One row per (counter, threshold): the counter key names the tenant, the resource, the
-- series and the window (for a rolling limit, the bucket the crossing happened in), so
-- the unique constraint is "one event per counter window and threshold", whichever
-- control plane saw it first.
CREATE TABLE threshold_crossings (
    id           BIGSERIAL PRIMARY KEY,
    counter_key  TEXT NOT NULL,
    -- `50`, `80`, … (percent of the quota) or `hard`.
    threshold    TEXT NOT NULL,
    percent      INTEGER NULL,
    -- Whose request crossed it, and whose limit it is (the tenant or an ancestor).
    tenant_id    TEXT NOT NULL,
    level_id     TEXT NOT NULL,
    -- The level's ancestors, parent first: for subscriptions on a subtree.
    ancestors    TEXT[] NOT NULL DEFAULT '{}',
    tier         TEXT NULL,
    resource     TEXT NOT NULL,
    policy       TEXT NOT NULL,
    period       TEXT NOT NULL,
    window_kind  TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL,
    resets_at    TIMESTAMPTZ NOT NULL,
    units        BIGINT NOT NULL,
    quota        BIGINT NOT NULL,
    hard_limit   BIGINT NOT NULL,
    used         BIGINT NOT NULL,
    at           TIMESTAMPTZ NOT NULL,
    -- What saw it: `check`, `lease`, `settle`, or `flush` (the history flusher's safety
    -- net, for crossings whose report was lost).
    found_by     TEXT NOT NULL,
    UNIQUE (counter_key, threshold)
);
-- Pruning: crossings of windows long over.
CREATE INDEX threshold_crossings_window_end ON threshold_crossings (window_end);

-- One message per crossing and subscription. `next_attempt_at` is when it is due; a
-- control plane that claims it moves it past its attempt (a lease), so a claim whose
-- process died is due again once the lease runs out. `attempts` counts claims and
-- fences the answer: only the claim that holds the latest count may finish it.
CREATE TABLE webhook_outbox (
    id              BIGSERIAL PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions (id) ON DELETE CASCADE,
    crossing_id     BIGINT NOT NULL REFERENCES threshold_crossings (id) ON DELETE CASCADE,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at     TIMESTAMPTZ NULL,
    UNIQUE (subscription_id, crossing_id)
);
CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_outbox_by_subscription ON webhook_outbox (subscription_id, id);
CREATE INDEX webhook_outbox_finished ON webhook_outbox (finished_at) WHERE status <> 'pending';

-- The delivery log: every attempt, with its answer's status or the error.
CREATE TABLE webhook_attempts (
    id          BIGSERIAL PRIMARY KEY,
    outbox_id   BIGINT NOT NULL REFERENCES webhook_outbox (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    duration_ms INTEGER NOT NULL,
    status_code INTEGER NULL,
    error       TEXT NULL
);
CREATE INDEX webhook_attempts_by_outbox ON webhook_attempts (outbox_id, id);
