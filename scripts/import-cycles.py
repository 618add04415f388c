#!/usr/bin/env python3
"""Import cycles between sibling modules, at every level of a crate: the
top-level modules (a file or folder right under `src/`), and the children
of every folder module. Imports are read from `crate::`, `super::` and
`self::` paths, and from a parent's paths to its own children; unit
tests (`mod tests` after `#[cfg(test)]`) do not count. The crate root
(`lib.rs`) is a node of its own, `lib`, which owns what it defines; a
folder's `mod.rs` is its children's common ground, not a node. What a
root re-exports belongs to the child it comes from.

    scripts/import-cycles.py CRATE_DIR

Exits 1, naming the edges, when any module imports a sibling that imports
it back, directly or not. To see it fail, add `use crate::front::tcp;` to
gateway/src/session/mod.rs (the front starts sessions), or
`use crate::front::http;` to gateway/src/front/sse/codec.rs (the upgrade
serves SSE), and run `scripts/import-cycles.py gateway`.
"""

import re
import sys
from pathlib import Path

ROOT_FILES = ("lib", "main", "mod")


def module_of(src: Path, file: Path) -> tuple:
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ROOT_FILES:
        parts.pop()
    return tuple(parts)


def expand(tree: str) -> list:
    """The paths a `use` tree names, each a list of segments."""
    tree = tree.strip()
    depth, brace = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                brace = i
            depth += 1
        elif ch == "}":
            depth -= 1
    if brace is None:
        path = re.split(r"\s+as\s+", tree)[0]
        return [[s for s in path.split("::") if s and s != "self"]]
    head = [s for s in tree[:brace].split("::") if s]
    inner, parts, depth, start = tree[brace + 1 : tree.rindex("}")], [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "{"
        depth -= ch == "}"
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    return [head + rest for part in parts if part.strip() for rest in expand(part)]


def paths(text: str) -> list:
    """Module paths a file names: its `use` trees, and paths in its code."""
    found = []
    for tree in re.findall(r"\buse\s+([^;]+);", text):
        found += expand(tree)
    code = re.sub(r"\buse\s+[^;]+;", "", text)
    found += [m.split("::") for m in re.findall(r"\b(?:crate|super|self)(?:::\w+)+", code)]
    found += [m.split("::") for m in re.findall(r"(?<![:\w])(\w+(?:::\w+)+)", code)]
    return found


def resolve(path: list, here: tuple, modules: set):
    """`path`, named in module `here`, as an absolute one, or None when
    it is another crate's."""
    if not path:
        return None
    if path[0] == "crate":
        return tuple(path[1:])
    base, rest = here, list(path)
    if rest[0] == "self":
        rest.pop(0)
    elif rest[0] == "super":
        while rest and rest[0] == "super":
            base, rest = base[:-1], rest[1:]
    elif here + (rest[0],) not in modules:
        return None
    return base + tuple(rest)


def reexports(src: Path, folder: tuple, children: set) -> dict:
    """Items a folder's root file re-exports, by name, to its child they come from."""
    root = next((f for f in (src.joinpath(*folder, n + ".rs") for n in ROOT_FILES) if f.exists()), None)
    if root is None:
        return {}
    found = {}
    for tree in re.findall(r"\bpub(?:\([^)]*\))?\s+use\s+([^;]+);", root.read_text()):
        for path in expand(tree):
            target = resolve(path, folder, set()) if path[0] in ("crate", "self", "super") else (folder + tuple(path))
            if target and target[: len(folder)] == folder and len(target) > len(folder) + 1:
                if target[len(folder)] in children:
                    found[target[-1]] = target[len(folder)]
    return found


def edges(crate: Path) -> set:
    """(folder, from, to) for each import between siblings of `folder`."""
    src = crate / "src"
    files = {f: module_of(src, f) for f in src.rglob("*.rs")}
    modules = {m[:i] for m in files.values() for i in range(len(m) + 1)}
    folders = {m[:i] for m in files.values() for i in range(len(m))} | {()}
    children = {d: {m[len(d)] for m in modules if len(m) > len(d) and m[: len(d)] == d} for d in folders}
    exported = {d: reexports(src, d, children[d]) for d in folders}
    found = set()
    for file, here in files.items():
        text = re.sub(r"//[^\n]*", "", file.read_text()).split("#[cfg(test)]\nmod tests")[0]
        targets = {resolve(path, here, modules) for path in paths(text)} - {None}
        for depth in range(len(here) + 1):
            folder = here[:depth]
            source = here[depth] if depth < len(here) else "lib"
            if source == "lib" and folder != ():
                continue
            for target in targets:
                if target[:depth] != folder or len(target) <= depth:
                    continue
                name = target[depth]
                if name not in children[folder]:
                    name = exported[folder].get(name, "lib" if folder == () else None)
                if name and name != source:
                    found.add((folder, source, name))
    return found


def cycles(graph: set) -> set:
    """The edges that lie on a cycle: a->b where b reaches a, among siblings."""
    out = {}
    for folder, a, b in graph:
        out.setdefault((folder, a), set()).add(b)

    def reaches(folder, start, goal):
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo.extend(out.get((folder, node), ()))
        return False

    return {(folder, a, b) for folder, a, b in graph if reaches(folder, b, a)}


def main():
    crate = Path(sys.argv[1])
    on_cycles = sorted(cycles(edges(crate)))
    for folder, a, b in on_cycles:
        where = "/".join(folder) or "the crate root"
        print(f"{crate}: in {where}, {a} imports {b}, which imports it back (directly or not): an import cycle")
    print(f"{crate}: {len(on_cycles)} edges on import cycles")
    sys.exit(1 if on_cycles else 0)


if __name__ == "__main__":
    main()
