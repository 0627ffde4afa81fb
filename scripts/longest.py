#!/usr/bin/env python3
"""The longest functions of the crate, by lines from `fn` to its closing brace.

    python3 scripts/longest.py [COUNT]     # the COUNT longest (20 by default), tests left out
"""

import re
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def functions(path):
    lines = path.read_text().splitlines()
    in_tests = False
    for i, line in enumerate(lines):
        if re.match(r"\s*#\[cfg\(test\)\]", line):
            in_tests = True  # unit tests come last in every file here
        if in_tests:
            return
        m = re.match(r"\s*(?:pub(?:\([\w:]+\))?\s+)?(?:const\s+)?(?:unsafe\s+)?fn\s+(\w+)", line)
        if not m:
            continue
        depth, parens, seen = 0, 0, False
        for j in range(i, len(lines)):
            code = re.sub(r"//.*", "", lines[j])
            code = re.sub(r"'(?:\\.|[^'\\])'", "", re.sub(r'"(?:\\.|[^"\\])*"', "", code))
            parens += code.count("(") + code.count("[") - code.count(")") - code.count("]")
            if not seen and parens <= 0 and code.rstrip().endswith(";") and "{" not in code:
                break  # a declaration without a body
            depth += code.count("{") - code.count("}")
            seen = seen or "{" in code
            if seen and depth <= 0:
                yield j - i + 1, f"{path.relative_to(SRC.parent)}:{i + 1}", m.group(1)
                break


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    found = sorted((f for p in SRC.rglob("*.rs") for f in functions(p)), reverse=True)
    for n, place, name in found[:count]:
        print(f"{n:5}  {name:32} {place}")
    over = sum(1 for n, _, _ in found if n > 80)
    print(f"{len(found)} functions, {over} over 80 lines")


if __name__ == "__main__":
    main()
