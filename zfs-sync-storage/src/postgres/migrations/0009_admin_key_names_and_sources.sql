-- Admin keys get a name and a source ('configured': the admin_key setting, at most one after
-- a start; 'created': generated). The plain-text key prefix is no longer stored: the column
-- goes, with every prefix stored before.
--
-- Keys stored before: an admin key whose prefix is not that of a generated key (`zs_` and 8
-- lower-case hex digits) was a configured one; it becomes 'configured', so the next start
-- with another admin_key revokes it. Generated-looking admin keys stay 'created'.

ALTER TABLE api_keys ADD COLUMN name text NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN source text NOT NULL DEFAULT 'created'
    CHECK (source IN ('configured', 'created'));
UPDATE api_keys SET source = 'configured', name = 'admin_key setting'
    WHERE role = 'admin' AND prefix !~ '^zs_[0-9a-f]{8}$';
UPDATE api_keys SET name = 'created before key names'
    WHERE role = 'admin' AND source = 'created';
ALTER TABLE api_keys DROP COLUMN prefix;
CREATE INDEX api_keys_admin ON api_keys(role, source);
