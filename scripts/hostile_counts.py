#!/usr/bin/env python3
"""Counts the requests of a schemathesis run and their answers' status codes.

Reads every NDJSON report (`--report ndjson`) under the directories given (one per pass, as
scripts/schemathesis.sh writes them), prints requests tried and the count of each status
code per pass and in total, and exits 1 when any answer was a 5xx. Standard library only.

Usage: scripts/hostile_counts.py REPORT_DIR [REPORT_DIR...]
"""

import collections
import json
import pathlib
import sys


def count(report: pathlib.Path) -> collections.Counter:
    statuses: collections.Counter = collections.Counter()
    with report.open(encoding="utf-8") as lines:
        for line in lines:
            event = json.loads(line).get("ScenarioFinished")
            if not event:
                continue
            for interaction in event["recorder"].get("interactions", {}).values():
                response = interaction.get("response")
                statuses[response["status_code"] if response else "no answer"] += 1
    return statuses


def render(label: str, statuses: collections.Counter) -> str:
    tried = sum(statuses.values())
    fives = sum(n for s, n in statuses.items() if isinstance(s, int) and s >= 500)
    codes = ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items(), key=lambda i: str(i[0])))
    return f"{label}: {tried} requests, 5xx: {fives} ({codes})"


def main(dirs: list[str]) -> int:
    if not dirs:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    total: collections.Counter = collections.Counter()
    for d in dirs:
        for report in sorted(pathlib.Path(d).rglob("*.ndjson")):
            statuses = count(report)
            total += statuses
            print(render(str(report.parent.name), statuses))
    print(render("total", total))
    fives = sum(n for s, n in total.items() if isinstance(s, int) and s >= 500)
    return 1 if fives or not total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
