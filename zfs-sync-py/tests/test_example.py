"""examples/plan_from_zfs_list.py on the sample inventories it ships with."""

import json
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SCRIPT = EXAMPLES / "plan_from_zfs_list.py"
DATA = [str(EXAMPLES / "data" / "hostA.txt"), str(EXAMPLES / "data" / "hostB.txt")]


def run(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60)


def test_example_prints_the_plan() -> None:
    out = run("--ssh-user", "zfs", "--flags", "compressed", *DATA)
    assert out.returncode == 0, out.stderr
    lines: List[str] = out.stdout.splitlines()
    assert lines[0] == "2 transfer(s), 0 conflict(s), 0 gap(s)"
    assert "incremental hostA:tank/vm1 -> hostB:backup/vm1 (from @auto-2026-11-20_06, 2 snapshot(s)" in out.stdout
    assert "full hostA:tank/vm2 -> hostB:backup/vm2 (full, 2 snapshot(s)" in out.stdout
    assert (
        "  run on hostA: zfs send -c -I tank/vm1@auto-2026-11-20_06 tank/vm1@auto-2026-11-20_18"
        " | ssh -o BatchMode=yes zfs@hostB 'zfs receive -s -u backup/vm1'"
    ) in lines


def test_example_json_output() -> None:
    out = run("--json", "--hub", "hostA", *DATA)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert [t["kind"] for t in plan["transfers"]] == ["incremental", "full"]
    assert plan["transfers"][0]["snapshots"] == ["auto-2026-11-20_12", "auto-2026-11-20_18"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hub", "hostC", *DATA], "unknown host(s): hostC"),
        (["--root", "hostB", *DATA], "expected HOST=DATASET"),
        (["--root", "hostB=backup//x", *DATA], "empty component"),
        (["--flags", "turbo", *DATA], "send_flags[0]"),
    ],
)
def test_example_reports_bad_arguments(args: List[str], message: str) -> None:
    out = run(*args)
    assert out.returncode != 0
    assert message in out.stderr


def test_example_names_the_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "hostC.txt"
    bad.write_text("tank/a@s1\t1\t1\t1795132800\t1\t2\ntank/a@s;2\t1\t1\t1795132800\t1\t2\n")
    out = run(DATA[0], str(bad))
    assert out.returncode == 1
    assert f"{bad}: line 2" in out.stderr
