-- The complete quota model of SPEC §1: limits on tiers or as per-tenant overrides, with
-- week periods, rolling windows and gauges; tenant hierarchy rules, enforcement modes and
-- overcommit; assignments; the append-only event log; persisted usage history.

ALTER TABLE tiers ADD COLUMN description TEXT NOT NULL DEFAULT '';

-- A limit belongs to a tier or, as an override, to one tenant. `period` NULL is a gauge
-- (concurrency): no window. `window_kind` 'rolling' counts the trailing period instead of
-- the calendar one.
ALTER TABLE limits ALTER COLUMN tier DROP NOT NULL;
ALTER TABLE limits ADD COLUMN tenant_id TEXT NULL REFERENCES tenants (id) ON DELETE CASCADE;
ALTER TABLE limits ADD COLUMN window_kind TEXT NOT NULL DEFAULT 'calendar'
    CHECK (window_kind IN ('calendar', 'rolling'));
ALTER TABLE limits DROP CONSTRAINT limits_period_check;
ALTER TABLE limits ALTER COLUMN period DROP NOT NULL;
ALTER TABLE limits ADD CONSTRAINT limits_period_check
    CHECK (period IN ('second', 'minute', 'hour', 'day', 'week', 'month'));
ALTER TABLE limits ADD CONSTRAINT limits_one_owner CHECK ((tier IS NULL) <> (tenant_id IS NULL));
ALTER TABLE limits ADD CONSTRAINT limits_gauges_have_no_window
    CHECK (period IS NOT NULL OR window_kind = 'calendar');
ALTER TABLE limits ADD CONSTRAINT limits_rolling_needs_a_minute
    CHECK (window_kind = 'calendar' OR period <> 'second');
ALTER TABLE limits DROP CONSTRAINT limits_tier_resource_period_key;
CREATE UNIQUE INDEX limits_tier_unique
    ON limits (tier, resource, COALESCE(period, ''), window_kind) WHERE tier IS NOT NULL;
CREATE UNIQUE INDEX limits_tenant_unique
    ON limits (tenant_id, resource, COALESCE(period, ''), window_kind) WHERE tenant_id IS NOT NULL;

-- A tenant's own tier is optional now (assignments can give it one). Deleting a tier a
-- tenant or an assignment names is refused by the foreign keys (no ON DELETE action).
ALTER TABLE tenants ALTER COLUMN tier DROP NOT NULL;
ALTER TABLE tenants ADD COLUMN mode TEXT NOT NULL DEFAULT 'enforce'
    CHECK (mode IN ('enforce', 'shadow', 'off'));
-- How far the children's quotas may sum past this tenant's, in parts per million
-- (1 000 000 = not at all).
ALTER TABLE tenants ADD COLUMN overcommit_ppm BIGINT NOT NULL DEFAULT 1000000
    CHECK (overcommit_ppm > 0);
ALTER TABLE tenants ADD CONSTRAINT tenants_not_their_own_parent
    CHECK (parent_id IS NULL OR parent_id <> id);

-- Which tier applies to whom. Priority follows from the kind: a direct tenant assignment
-- (300) beats a role assignment (200) beats the default tier (100).
CREATE TABLE assignments (
    id         BIGSERIAL PRIMARY KEY,
    tier       TEXT NOT NULL REFERENCES tiers (name),
    kind       TEXT NOT NULL CHECK (kind IN ('tenant', 'role', 'default')),
    tenant_id  TEXT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    role       TEXT NULL,
    priority   INTEGER GENERATED ALWAYS AS
        (CASE kind WHEN 'tenant' THEN 300 WHEN 'role' THEN 200 ELSE 100 END) STORED,
    enabled    BOOLEAN NOT NULL DEFAULT true,
    expires_at TIMESTAMPTZ NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'tenant') = (tenant_id IS NOT NULL)),
    CHECK ((kind = 'role') = (role IS NOT NULL))
);
CREATE INDEX assignments_tenant_idx ON assignments (tenant_id) WHERE tenant_id IS NOT NULL;
CREATE INDEX assignments_tier_idx ON assignments (tier);

-- The audit log: admin changes with actor and before/after, resets, the first warning of
-- a window, rejections aggregated per interval. No foreign keys: events outlive what they
-- describe. Rows are never changed or removed.
CREATE TABLE events (
    id        BIGSERIAL PRIMARY KEY,
    at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    kind      TEXT NOT NULL,
    tenant_id TEXT NULL,
    actor     TEXT NULL,
    subject   TEXT NULL,
    data      JSONB NOT NULL DEFAULT '{}'::jsonb,
    before    JSONB NULL,
    after     JSONB NULL
);
CREATE INDEX events_tenant_idx ON events (tenant_id, id);
CREATE INDEX events_kind_idx ON events (kind, id);
-- One "first warning" per counter window, however many instances saw it.
CREATE UNIQUE INDEX events_first_warning_once
    ON events (tenant_id, (data ->> 'counter')) WHERE kind = 'quota.warning';

CREATE FUNCTION events_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_append_only();

-- Usage per tenant, resource and counter window, persisted from Redis so that it survives
-- a Redis loss and can be billed. `series` is the period (`month`) or, for rolling
-- limits, the bucket series (`rolling-hour`). `epoch` counts resets and adjustments, so a
-- stale snapshot never overwrites a newer correction.
CREATE TABLE usage_history (
    tenant_id    TEXT NOT NULL,
    resource     TEXT NOT NULL,
    series       TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    window_end   TIMESTAMPTZ NOT NULL,
    used         BIGINT NOT NULL CHECK (used >= 0),
    epoch        BIGINT NOT NULL DEFAULT 0,
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, resource, series, window_start)
);
CREATE INDEX usage_history_open_windows ON usage_history (tenant_id, window_end);
