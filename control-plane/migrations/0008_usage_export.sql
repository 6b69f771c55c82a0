-- The billing export (`GET /admin/v1/usage/export`) reads every tenant's windows that
-- start in a time range, in the order (window start, tenant, resource, series), a page
-- at a time from the last row of the previous page. The primary key leads with the
-- tenant, so without this index each page would scan and sort every row of the range
-- (a month of 10,000 tenants is 600,000 rows of daily windows for two resources). With
-- it a page is one index range. Ids are compared byte by byte (COLLATE "C"), as the
-- tenant listing compares them, so the order does not depend on the database's
-- collation.
CREATE INDEX usage_history_export_idx
    ON usage_history (window_start, tenant_id COLLATE "C", resource COLLATE "C", series COLLATE "C");

-- Each exported window asks whether usage counted in PostgreSQL during a Redis outage
-- is still waiting to reach it (then its value is not final). With few pending counters
-- PostgreSQL hashes them once; after an outage of many tenants it probes this index per
-- window instead of scanning them all for each.
CREATE INDEX fallback_counters_pending_window_idx
    ON fallback_counters (tenant_id, resource, series, window_start) WHERE pending <> 0;
