#!/usr/bin/env python3
"""Prints which folders of engine/ include which, and fails on a cycle.

The folders are the stages of a run (docs/DESIGN.md, "Layout"): each may use the
ones below it, never one that uses it, so a reader can take them in order. A
cycle (io -> objective -> io, say) means a file sits in the wrong folder.
kernels/ counts as a folder of its own.

    check_engine_layers.py SOURCE_DIR
"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"(engine|kernels)/([^"/]+)(/[^"]*)?"')


def folder_of(path, root):
    parts = path.relative_to(root).parts
    if parts[0] == "kernels":
        return "kernels"
    return parts[1] if len(parts) > 2 else "engine"


def main(root):
    root = pathlib.Path(root).resolve()
    edges = {}
    files = [p for base in ("engine", "kernels") for p in (root / base).rglob("*")
             if p.suffix in (".h", ".cpp", ".cu", ".cuh", ".inc")]
    for path in files:
        source = folder_of(path, root)
        for line in path.read_text(encoding="utf-8").splitlines():
            match = INCLUDE.match(line)
            if not match:
                continue
            target = "kernels" if match.group(1) == "kernels" else match.group(2)
            if match.group(1) == "engine" and match.group(3) is None:
                target = "engine"  # a file at engine/'s top
            if target != source:
                edges.setdefault(source, {}).setdefault(target, str(path.relative_to(root)))
    for source in sorted(edges):
        print(f"{source:10} -> {', '.join(sorted(edges[source]))}")
    # Cycles: depth-first search over the folder graph.
    state, cycles = {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(edges.get(node, {})):
            if state.get(nxt) == "open":
                cycle = trail[trail.index(nxt):] + [nxt]
                cycles.append(" -> ".join(cycle) + "  (" + ", ".join(
                    f"{a}->{b}: {edges[a][b]}" for a, b in zip(cycle, cycle[1:])) + ")")
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    for cycle in cycles:
        print("cycle: " + cycle)
    if cycles:
        return 1
    print("no folder of engine/ depends on one that depends on it")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
