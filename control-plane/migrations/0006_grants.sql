-- Grants (issue 17): an amount added to one tenant's hard limit on a resource, period and
-- window, from `effective_at` until `expires_at` — temporary credit, kept as a record that
-- billing can read. A grant is never updated but to end it early (`revoked_at`, by whom
-- and why); it goes only with its tenant.
--
-- A grant matches a limit of its tenant with the same resource, period and window kind
-- (`period` NULL: a gauge), as an override does. Several grants add up.

CREATE TABLE grants (
    id            BIGSERIAL PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- A stable name of the grant's own choosing (`tollgate apply` finds it by this).
    key           TEXT NULL CHECK (key ~ '^[A-Za-z0-9._:-]{1,128}$'),
    resource      TEXT NOT NULL,
    period        TEXT NULL CHECK (period IN ('second', 'minute', 'hour', 'day', 'week', 'month')),
    window_kind   TEXT NOT NULL DEFAULT 'calendar' CHECK (window_kind IN ('calendar', 'rolling')),
    amount        BIGINT NOT NULL CHECK (amount > 0),
    effective_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ NULL,
    -- When it stops counting: its expiry, or its revocation if that came first (LEAST
    -- ignores NULL).
    ends_at       TIMESTAMPTZ GENERATED ALWAYS AS (LEAST(expires_at, revoked_at)) STORED,
    reason        TEXT NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 1024),
    revoke_reason TEXT NULL CHECK (char_length(revoke_reason) <= 1024),
    created_by    TEXT NULL,
    revoked_by    TEXT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (expires_at > effective_at),
    CHECK (period IS NOT NULL OR window_kind = 'calendar'),
    CHECK ((revoked_at IS NULL) = (revoked_by IS NULL))
);

-- A tenant's grants in id order (the listing), and those still to end (the chains).
CREATE INDEX grants_tenant_idx ON grants (tenant_id, id);
CREATE INDEX grants_tenant_ends_idx ON grants (tenant_id, ends_at);
CREATE UNIQUE INDEX grants_tenant_key_unique ON grants (tenant_id, key) WHERE key IS NOT NULL;
