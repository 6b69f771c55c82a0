-- The quota model of SPEC §1, first cut: tiers with their limits, and tenants.
-- Later migrations add per-tenant overrides, assignments, enforcement modes, events
-- and usage history; the columns here are what those build on.

CREATE TABLE tiers (
    name       TEXT PRIMARY KEY CHECK (name ~ '^[a-z0-9_-]{1,64}$'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE limits (
    id          BIGSERIAL PRIMARY KEY,
    tier        TEXT NOT NULL REFERENCES tiers (name) ON DELETE CASCADE,
    resource    TEXT NOT NULL,
    period      TEXT NOT NULL CHECK (period IN ('second', 'minute', 'hour', 'day', 'month')),
    quota       BIGINT NOT NULL CHECK (quota >= 0),
    overage     BIGINT NOT NULL DEFAULT 0 CHECK (overage >= 0),
    warn_at_ppm INTEGER NOT NULL DEFAULT 800000 CHECK (warn_at_ppm BETWEEN 0 AND 1000000),
    unlimited   BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (tier, resource, period)
);

-- A tier in use cannot be deleted: tenants.tier has no ON DELETE action.
CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    parent_id  TEXT NULL REFERENCES tenants (id),
    tier       TEXT NOT NULL REFERENCES tiers (name),
    labels     JSONB NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(labels) = 'object'),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX tenants_parent_id_idx ON tenants (parent_id);
CREATE INDEX tenants_tier_idx ON tenants (tier);
