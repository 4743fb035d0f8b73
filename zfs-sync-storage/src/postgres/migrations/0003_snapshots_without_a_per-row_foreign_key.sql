-- Snapshots lose their foreign key to `systems`: its trigger looked the system up (`SELECT …
-- FOR KEY SHARE`) for every inserted row, about a third of the server's CPU time for a first
-- report of 100,000 snapshots. What it guaranteed still holds: every snapshot upsert first
-- locks its system's row (`FOR NO KEY UPDATE`, or `FOR UPDATE`) and fails when it is gone,
-- and deleting systems deletes their snapshots in the same statement, by the statement-level
-- trigger below (which waits for a running upsert's lock, then sees its rows). The function
-- resolves `snapshots` in the schema it was created in, whatever the caller's search path.

ALTER TABLE snapshots DROP CONSTRAINT snapshots_system_id_fkey;

CREATE FUNCTION delete_system_snapshots() RETURNS trigger LANGUAGE plpgsql
    SET search_path FROM CURRENT AS $$
BEGIN
    DELETE FROM snapshots s USING deleted_systems d WHERE s.system_id = d.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER systems_delete_snapshots AFTER DELETE ON systems
    REFERENCING OLD TABLE AS deleted_systems
    FOR EACH STATEMENT EXECUTE FUNCTION delete_system_snapshots();
