"""The record ``benchmarks/gpu_checks.sh`` keeps as it goes: ``$OUT/checks.json``.

    python3 benchmarks/gpu_record.py OUT/checks.json PART key=value ...   # one part's status
    python3 benchmarks/gpu_record.py OUT/checks.json PART --junit FILE    # a pytest run's outcomes
    python3 benchmarks/gpu_record.py OUT/checks.json PART --json FILE     # a report a tool wrote
    python3 benchmarks/gpu_record.py OUT/checks.json --limits OUT          # what comes back from OUT

Each call rewrites the file atomically, so a device call cut short by its time limit still
returns every part recorded until then. Imports no torch: it costs nothing between the parts.
``--limits`` checks the device's rules for what comes back (at most 8 files, none more than 2
folders down, names of letters, digits, '.', '_' and '-') and records what breaks them.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

MAX_FILES, MAX_DEPTH, MAX_BYTES = 8, 2, 16 * 2**20
NAME = re.compile(r"^[A-Za-z0-9._-]+$")


def value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def junit(path: Path) -> dict:
    """Counts and each test's outcome (with the first lines of a failure's message)."""
    tests = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        outcome, message = "passed", None
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                message = "\n".join(((found.get("message") or "") + "\n" + (found.text or "")).strip().splitlines()[:12])
                break
        tests[name] = {"outcome": outcome, "seconds": float(case.get("time", 0))} | ({"message": message} if message else {})
    counts = {}
    for t in tests.values():
        counts[t["outcome"]] = counts.get(t["outcome"], 0) + 1
    return {"counts": counts, "tests": tests}


def limits(out: Path) -> dict:
    """What in ``out`` would not come back from the device machine."""
    files = [p for p in out.rglob("*") if p.is_file()]
    problems = []
    if len(files) > MAX_FILES:
        problems.append(f"{len(files)} files, more than {MAX_FILES}")
    for p in files:
        rel = p.relative_to(out)
        if len(rel.parts) - 1 > MAX_DEPTH:
            problems.append(f"{rel}: more than {MAX_DEPTH} folders down")
        if not all(NAME.match(part) for part in rel.parts):
            problems.append(f"{rel}: a name with other characters than letters, digits, '.', '_' and '-'")
        if p.stat().st_size > MAX_BYTES:
            problems.append(f"{rel}: over 16 MiB")
    return {"files": sorted(str(p.relative_to(out)) for p in files), "problems": problems}


def main(argv: list[str]) -> int:
    record = Path(argv[0])
    data = json.loads(record.read_text()) if record.exists() else {"parts": {}}
    if argv[1] == "--limits":
        data["out"] = limits(Path(argv[2]))
    else:
        part = data["parts"].setdefault(argv[1], {})
        rest = argv[2:]
        while rest:
            if rest[0] == "--junit":
                part.update(junit(Path(rest[1])) if Path(rest[1]).exists() else {"junit": "not written"})
                rest = rest[2:]
            elif rest[0] == "--json":
                part["report"] = json.loads(Path(rest[1]).read_text()) if Path(rest[1]).exists() else None
                rest = rest[2:]
            else:
                key, _, text = rest[0].partition("=")
                part[key] = value(text)
                rest = rest[1:]
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(record)
    if argv[1] == "--limits" and data["out"]["problems"]:
        print("what would not come back: " + "; ".join(data["out"]["problems"]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
