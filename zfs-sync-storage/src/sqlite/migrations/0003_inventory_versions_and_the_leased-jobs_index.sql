-- The inventory version is bumped in the transaction of every change to a system's
-- snapshots or resume tokens, so a cached inventory is known to be current by reading one
-- number.

ALTER TABLE systems ADD COLUMN inventory_version INTEGER NOT NULL DEFAULT 0;
-- Lease expiry runs before every hand-out: it must not scan the job history.
CREATE INDEX jobs_leased ON jobs(lease_expires_at) WHERE status = 'leased';
