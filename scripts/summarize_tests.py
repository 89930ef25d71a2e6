#!/usr/bin/env python3
"""Prints one line per test of a meson build: its result and, for Catch2 runs, the counts."""
import json
import re
import sys

log = sys.argv[1]
total_cases = 0
with open(log) as f:
    for line in f:
        entry = json.loads(line)
        out = entry.get("stdout") or ""
        m = re.search(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)", out)
        counts = ""
        if m:
            counts = f"{m.group(2)} test cases, {m.group(1)} assertions"
            total_cases += int(m.group(2))
        else:
            m = re.search(r"test cases:.*", out)
            counts = m.group(0) if m else ""
        print(f"    {entry['name']:<34} {entry['result']:<6} {counts}")
print(f"    {'(Catch2 test cases run in all)':<41} {total_cases}")
