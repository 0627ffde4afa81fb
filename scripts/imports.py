#!/usr/bin/env python3
"""The crate's import graph, file by file, checked for circles and for arrows against the
module order.

    python3 scripts/imports.py            # the check; exit 1 on a circle or a wrong arrow
    python3 scripts/imports.py --graph    # also every file's imports
    python3 scripts/imports.py --tree     # the module tree with line counts

A file imports another when it names an item of it: `use crate::nn::pool::PooledGrad`,
`super::sum(..)` or `crate::parallel::threads()` anywhere in its code. A name that a `mod.rs`
re-exports (`pub use layer::{Layer, Param}`) counts as an import of the file that defines it,
and declaring or re-exporting a submodule is no import: a `mod.rs` that only gathers its
files imports nothing. A file's use of its own module's `mod.rs` (or an enclosing one's), where
a module keeps what all its files share (its error type, its re-exports), is not followed in
the search for circles: a circle is files of a module, or of different modules, that need each
other. Unit tests (`#[cfg(test)] mod tests { .. }`) are left out: they may
use anything.

The order is the one `src/lib.rs` states: the utilities (the top-level files), then data,
nn, optim, train, stats, study, report, explore, cli. Each module may use itself and those before it.
"""

import re
import sys
from pathlib import Path

ORDER = ["<utilities>", "data", "nn", "optim", "train", "stats", "study", "report", "explore", "cli"]
SRC = Path(__file__).resolve().parent.parent / "src"


def module_of(path):
    """The module path of a source file, e.g. ['nn', 'kernels', 'gemm']."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] in ("mod", "lib", "main"):
        parts = parts[:-1]
    return parts


def strip(text):
    """The code without comments, strings and unit-test modules."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i : m.start()])
        depth, j = 1, m.end()
        while depth and j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def use_paths(code):
    """Every path a file names: `use` trees expanded, and inline `crate::`/`super::` paths."""
    paths = []

    def expand(prefix, tree):
        tree = tree.strip()
        if not tree:
            return
        m = re.match(r"^([\w:]*?)(?:::)?\{(.*)\}$", tree, flags=re.S)
        if m:
            head = prefix + ([p for p in m.group(1).split("::") if p] if m.group(1) else [])
            depth, start, body = 0, 0, m.group(2)
            for k, ch in enumerate(body + ","):
                if ch == "{":
                    depth += 1
                elif ch == "}":
                    depth -= 1
                elif ch == "," and depth == 0:
                    expand(head, body[start:k])
                    start = k + 1
            return
        tree = re.sub(r"\s+as\s+\w+$", "", tree)
        paths.append(prefix + [p for p in tree.split("::") if p])

    for m in re.finditer(r"\buse\s+([^;]+);", code):
        expand([], m.group(1))
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", code):
        paths.append(m.group(1).split("::"))
    return paths


def main():
    # The binary's main.rs is the one file outside the library's module tree.
    files = {tuple(module_of(p)): p for p in SRC.rglob("*.rs") if p != SRC / "main.rs"}
    codes = {m: strip(p.read_text()) for m, p in files.items()}
    # Names a module file re-exports from its submodules: (module, name) -> submodule.
    reexports = {}
    for m, code in codes.items():
        for u in re.finditer(r"\bpub(?:\([\w:]+\))?\s+use\s+([^;]+);", code):
            for path in use_paths("use " + u.group(1) + ";"):
                if path and path[0] not in ("crate", "super", "self", "std") and len(path) >= 2:
                    reexports[(m, path[-1])] = m + tuple(path[:-1])

    def resolve(here, path):
        """The file a path names, or None for an outside crate."""
        if path[0] == "crate":
            mod, rest = (), path[1:]
        elif path[0] in ("super", "self"):
            mod, rest = here, path
            while rest and rest[0] in ("super", "self"):
                if rest[0] == "super":
                    mod = mod[:-1]
                rest = rest[1:]
        elif (here + (path[0],)) in files:
            mod, rest = here, path
        else:
            return None
        for name in rest:
            if mod + (name,) in files:
                mod = mod + (name,)
            elif (mod, name) in reexports and reexports[(mod, name)] in files:
                mod = reexports[(mod, name)]
            else:
                break
        return mod

    graph = {}
    for m, code in codes.items():
        own = re.sub(r"\bpub(?:\([\w:]+\))?\s+use\s+[\w:]+::\{[^;]*\};|\bpub(?:\([\w:]+\))?\s+use\s+[^;]+;", "", code) if files[m].name in ("mod.rs", "lib.rs") else code
        targets = set()
        for path in use_paths(own):
            t = resolve(m, path)
            if t is not None and t != m and t in files:
                targets.add(t)
        graph[m] = targets

    def name(m):
        return str(files[m].relative_to(SRC))

    def rank(m):
        if not m or (len(m) == 1 and files.get(m, Path()).name != "mod.rs"):
            return 0
        return ORDER.index(m[0]) if m[0] in ORDER else 0

    problems = 0
    for m in sorted(graph):
        for t in sorted(graph[m]):
            if rank(t) > rank(m):
                print(f"against the order: {name(m)} -> {name(t)}")
                problems += 1
    # Circles: strongly connected components of more than one file (Tarjan).
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if v[: len(w)] == w and files[w].name == "mod.rs":
                continue  # a file's own module front

            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            comps.append(comp)

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    for comp in comps:
        if len(comp) > 1:
            print("circle: " + ", ".join(sorted(name(m) for m in comp)))
            problems += 1
    if "--graph" in sys.argv:
        for m in sorted(graph):
            print(f"{name(m)} -> {', '.join(sorted(name(t) for t in graph[m])) or '(nothing)'}")
    if "--tree" in sys.argv:
        total = 0
        for p in sorted(SRC.rglob("*.rs")):
            n = len(p.read_text().splitlines())
            total += n
            print(f"{n:6} {p.relative_to(SRC.parent)}")
        print(f"{total:6} total")
    edges = sum(len(t) for t in graph.values())
    print(f"{len(graph)} files, {edges} imports between them: "
          + (f"{problems} problem(s)" if problems else "no circle, no arrow against the order"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
