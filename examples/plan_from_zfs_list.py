#!/usr/bin/env python3
"""Plan ZFS replication between hosts from their `zfs list` output.

Each host's inventory is a file holding the output of

    zfs list -H -p -t snapshot -o name,guid,createtxg,creation,used,referenced

named after the host (`hostA.txt` is host `hostA`). The hosts form one sync group; datasets
are matched pool-agnostically (`tank/vm1` on one host and `backup/vm1` on another are one
dataset). The script prints what each host lacks and the commands that would fill it, the
conflicts and the gaps no send can fill. It runs nothing.

    python3 examples/plan_from_zfs_list.py examples/data/hostA.txt examples/data/hostB.txt
    python3 examples/plan_from_zfs_list.py --hub hostA --ssh-user zfs --flags raw hostA.txt hostB.txt
    python3 examples/plan_from_zfs_list.py --json hostA.txt hostB.txt
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import zfs_sync


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inventories", nargs="+", type=Path, help="one zfs list output file per host")
    p.add_argument("--hub", help="replicate only from this host to the others (default: any direction)")
    p.add_argument("--root", action="append", default=[], metavar="HOST=DATASET",
                   help="the dataset under which HOST keeps the group's datasets (default: its pool)")
    p.add_argument("--ssh-user", help="user for ssh between the hosts")
    p.add_argument("--ssh-port", type=int, help="ssh port of every host")
    p.add_argument("--flags", default="", help="comma-separated send flags: compressed,raw,large_blocks,embedded")
    p.add_argument("--filter", help="only replicate snapshots whose name matches (glob, or regex:...)")
    p.add_argument("--pull", action="store_true", help="targets pull instead of sources pushing")
    p.add_argument("--now", help="plan as of this RFC 3339 time (default: now)")
    p.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    roots: Dict[str, str] = {}
    for item in args.root:
        host, sep, dataset = item.partition("=")
        if not sep:
            print(f"--root {item!r}: expected HOST=DATASET", file=sys.stderr)
            return 2
        try:
            roots[host] = zfs_sync.validate_dataset_name(dataset)
        except zfs_sync.InvalidNameError as err:
            print(f"--root {item!r}: {err.reason}", file=sys.stderr)
            return 2

    try:
        inventories = []
        systems: Dict[str, zfs_sync.System] = {}
        for path in args.inventories:
            host = path.stem
            system = zfs_sync.System(host, ssh_user=args.ssh_user, ssh_port=args.ssh_port)
            try:
                snapshots = zfs_sync.parse_zfs_list(path.read_text(encoding="utf-8"))
            except zfs_sync.ValidationError as err:
                raise zfs_sync.ValidationError(f"{path}: {err}", field=err.field, reason=err.reason) from None
            systems[host] = system
            inventories.append(zfs_sync.Inventory(system, snapshots))

        unknown = sorted(set(roots) - set(systems))
        if args.hub is not None and args.hub not in systems:
            unknown.append(args.hub)
        if unknown:
            print(f"unknown host(s): {', '.join(unknown)}; hosts are {', '.join(systems)}", file=sys.stderr)
            return 2
        group = zfs_sync.SyncGroup(
            "example",
            [zfs_sync.Member(s, roots.get(h)) for h, s in systems.items()],
            directional=args.hub is not None,
            hub_system_id=systems[args.hub] if args.hub else None,
            policy=zfs_sync.Policy(
                send_flags=[f for f in args.flags.split(",") if f],
                snapshot_filter=args.filter,
                transfer="pull" if args.pull else "push",
            ),
        )
        plan = zfs_sync.plan(group, inventories, now=args.now)
    except zfs_sync.ZfsSyncError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    if args.json:
        print(json.dumps(plan.to_dict(), indent=2, sort_keys=True))
        return 0

    name = {s.id: h for h, s in systems.items()}
    print(f"{len(plan.transfers)} transfer(s), {len(plan.conflicts)} conflict(s), {len(plan.gaps)} gap(s)")
    for t in plan.transfers:
        base = f"from @{t.base}" if t.base else "full"
        print(f"\n{t.kind} {name[t.source_system_id]}:{t.source_dataset} -> "
              f"{name[t.target_system_id]}:{t.target_dataset} ({base}, "
              f"{len(t.snapshots)} snapshot(s), ~{t.estimated_bytes} bytes)")
        print(f"  creates: {', '.join(t.snapshots)}")
        if t.command_error:
            print(f"  cannot run: {t.command_error}")
        for command in t.commands:
            print(f"  run on {name[t.runner_system_id]}: {command}")
    for c in plan.conflicts:
        print(f"\nconflict ({c.kind}, {c.reason}) on {c.dataset}: {name.get(c.system_a)} vs {name.get(c.system_b)}")
    for g in plan.gaps:
        print(f"\ngap on {name.get(g.target_system_id)}:{g.dataset}: {', '.join(g.snapshots)} cannot be sent any more")
    for d in plan.diagnostics:
        print(f"\nnote: {d['message']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The reader went away (`| head`): not an error of ours.
        sys.stderr.close()
        sys.exit(0)
