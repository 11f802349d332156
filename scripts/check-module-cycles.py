#!/usr/bin/env python3
"""Fails when modules of a crate import each other in a circle.

Reads every `use crate::a::...` (and `crate::a::` paths) in src/, maps each
file to its top-level module (src/auth/log_in.rs -> auth), and looks for
cycles in the graph of top-level modules. Test modules (`tests.rs`,
`testkit.rs`) are left out: they may see everything.

Usage: check-module-cycles.py CRATE_SRC_DIR [...]
"""
import pathlib
import re
import sys

USE = re.compile(r"\bcrate::([a-z_][a-z0-9_]*)")


def top_module(src: pathlib.Path, file: pathlib.Path) -> str:
    rel = file.relative_to(src)
    if len(rel.parts) == 1:
        return rel.stem
    return rel.parts[0]


def graph(src: pathlib.Path) -> dict:
    edges: dict = {}
    for file in sorted(src.rglob("*.rs")):
        if file.name in ("tests.rs", "testkit.rs", "lib.rs", "main.rs"):
            continue
        module = top_module(src, file)
        text = file.read_text()
        # Drop `#[cfg(test)] mod tests { ... }` at the end of a file.
        cut = text.find("#[cfg(test)]\nmod tests")
        if cut >= 0:
            text = text[:cut]
        for target in USE.findall(text):
            if target != module:
                edges.setdefault(module, set()).add(target)
        edges.setdefault(module, set())
    return edges


def cycles(edges: dict) -> list:
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def main() -> int:
    failed = False
    for arg in sys.argv[1:]:
        src = pathlib.Path(arg)
        found = cycles(graph(src))
        for cycle in found:
            print(f"{src}: module cycle: {' -> '.join(cycle)}")
            failed = True
        if not found:
            print(f"{src}: no module cycles")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
