"""Schemathesis hooks for the system-key pass of scripts/schemathesis.sh.

A system key acts only for its own system, so with random UUIDs every system-scoped
operation would stop at 403/404. This pass points every `system_id` (path or query) at the
system registered for it, so reports, heartbeats, inventories, resume tokens, instructions,
history and statistics are exercised past authorization with generated (valid and invalid)
bodies and parameters. Loaded through SCHEMATHESIS_HOOKS=schemathesis_hooks.
"""

import os

import schemathesis

SYSTEM_ID = os.environ["ZFS_SYNC_SCHEMATHESIS_SYSTEM_ID"]


@schemathesis.hook
def map_path_parameters(ctx, path_parameters):
    if path_parameters and "system_id" in path_parameters:
        path_parameters["system_id"] = SYSTEM_ID
    return path_parameters


@schemathesis.hook
def map_query(ctx, query):
    if query and "system_id" in query:
        query["system_id"] = SYSTEM_ID
    return query
