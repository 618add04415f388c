#!/usr/bin/env python3
"""Import cycles between a crate's top-level modules, read from `crate::`
paths. A top-level module is a file or folder right under `src/`; `lib`
is the crate root, which owns what lib.rs defines (what it re-exports
belongs to the module it comes from).

    scripts/import-cycles.py CRATE_DIR [KNOWN_EDGE ...]    (an edge: `from:to`)

Exits 1 when an edge `a:b` (a imports b) that lies on a cycle is not among the known
ones (the gateway's cycles left to undo, listed in test.sh), or a known
one is gone and still listed: so a new cycle fails CI, and the list only
shrinks. To see it fail, add `use crate::cmd::Command;` to
protocol/src/frame.rs (cmd imports frame) and run
`scripts/import-cycles.py protocol`.
"""

import re
import sys
from pathlib import Path


def top_module(src: Path, file: Path) -> str:
    parts = file.relative_to(src).parts
    if len(parts) == 1:
        stem = Path(parts[0]).stem
        return "lib" if stem in ("lib", "main") else stem
    return parts[0]


def reexports(src: Path, modules: set) -> dict:
    """Items lib.rs re-exports, by name, to the module they come from."""
    lib = (src / "lib.rs").read_text()
    found = {}
    for module, rest in re.findall(r"pub use (\w+)::([^;]+);", lib):
        if module not in modules:
            continue
        names = re.findall(r"\b(\w+)\b(?:\s*[,}]|$)", rest.replace("{", " { "))
        for name in names:
            found[name] = module
    return found


def edges(crate: Path) -> set:
    src = crate / "src"
    files = [f for f in src.rglob("*.rs")]
    modules = {top_module(src, f) for f in files}
    exported = reexports(src, modules)
    found = set()
    for file in files:
        source = top_module(src, file)
        text = re.sub(r"//[^\n]*", "", file.read_text())
        # `use crate::{a, b::c}` names several at once.
        names = re.findall(r"crate::(\w+)", text)
        if source == "lib":
            # The root names its modules without `crate::`.
            names += [m for m in re.findall(r"\b(\w+)::", text) if m in modules]
        for group in re.findall(r"crate::\{([^}]*)\}", text):
            names += re.findall(r"(?:^|,)\s*(\w+)", group)
        for name in names:
            target = name if name in modules else exported.get(name, "lib")
            if target != source:
                found.add((source, target))
    return found


def cycles(graph: set) -> set:
    """The edges that lie on a cycle: a->b where b reaches a."""
    out = {}
    for a, b in graph:
        out.setdefault(a, set()).add(b)

    def reaches(start, goal):
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(out.get(node, ()))
        return False

    return {(a, b) for a, b in graph if reaches(b, a)}


def main():
    crate = Path(sys.argv[1])
    known = {tuple(edge.split(":", 1)) for edge in sys.argv[2:] if ":" in edge}
    if len(known) != len(sys.argv[2:]):
        sys.exit(f"known edges are written from:to, got {sys.argv[2:]}")
    on_cycles = cycles(edges(crate))
    new = sorted(on_cycles - known)
    gone = sorted(known - on_cycles)
    for a, b in gone:
        print(f"{crate}: {a}:{b} is no longer on a cycle: take it off the known list")
    for a, b in new:
        print(f"{crate}: {a} imports {b}, which imports it back (directly or not): a new import cycle")
    print(f"{crate}: {len(on_cycles)} edges on import cycles, {len(new)} new")
    sys.exit(1 if new or gone else 0)


if __name__ == "__main__":
    main()
