#!/usr/bin/env python3
"""Import cycles between a crate's top-level modules, read from `crate::`
paths. A top-level module is a file or folder right under `src/`; `lib`
is the crate root, which owns what lib.rs defines (what it re-exports
belongs to the module it comes from).

    scripts/import-cycles.py CRATE_DIR

Exits 1, naming the edges, when any top-level module imports another
that imports it back, directly or not. To see it fail, add
`use crate::front::tcp;` to gateway/src/session/mod.rs (the front starts
sessions) and run `scripts/import-cycles.py gateway`.
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
    on_cycles = sorted(cycles(edges(crate)))
    for a, b in on_cycles:
        print(f"{crate}: {a} imports {b}, which imports it back (directly or not): an import cycle")
    print(f"{crate}: {len(on_cycles)} edges on import cycles")
    sys.exit(1 if on_cycles else 0)


if __name__ == "__main__":
    main()
