-- The tenant listing pages by id and finds tenants by an id prefix at any number of
-- tenants: both need an index whose order is the listing's. Ids are compared byte by
-- byte (COLLATE "C") so that a prefix is one contiguous range of the index whatever the
-- database's collation (under en_US, say, `acme/web` and `acme-web` sort by letters
-- first and a prefix is no range at all).

-- The listing, `?prefix=` and `?cursor=`: a range scan in the listing's order.
CREATE INDEX tenants_id_bytes_idx ON tenants (id COLLATE "C");
-- `?parent=`: one parent's children in order, however many it has.
CREATE INDEX tenants_parent_id_bytes_idx ON tenants (parent_id, id COLLATE "C");
-- `?root=true`: the roots in order, however few of all tenants they are (a plan on the
-- index above does not take `parent_id IS NULL` as fixing the first column).
CREATE INDEX tenants_roots_bytes_idx ON tenants (id COLLATE "C") WHERE parent_id IS NULL;
-- Replaced by the one above, which serves every query it served.
DROP INDEX tenants_parent_id_idx;
