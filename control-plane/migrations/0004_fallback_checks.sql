-- What each check counted in PostgreSQL while Redis was unreachable, as Redis keeps its
-- check records: when the filter refused the request after all (the answer came too
-- late), `POST /v1/release` with `refund` takes exactly that back, once.

CREATE TABLE fallback_checks (
    -- The check record's key in Redis (`tollgate:{root}:k:<request id>`).
    record_key   TEXT PRIMARY KEY,
    -- The fallback counters it added to, and what it added to each.
    counter_keys TEXT[] NOT NULL,
    amounts      BIGINT[] NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (cardinality(counter_keys) = cardinality(amounts))
);
CREATE INDEX fallback_checks_created ON fallback_checks (created_at);
