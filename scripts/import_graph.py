"""Print the import graph between autolabel's packages (imports inside functions included)
and fail when two packages import each other, directly or through others.

    python scripts/import_graph.py          # edges "a -> b" and the cycle check

A "package" is a top-level unit of ``autolabel``: a subpackage (``routing``) or a module
(``core``); the video package's two data modules (``video.tracks``, ``video.keyframes``)
are their own units, as in the layers contract of ``pyproject.toml``.
"""

from __future__ import annotations

import os
import sys

import tomllib

import grimp
import networkx as nx

SPLIT = {"autolabel.video.tracks", "autolabel.video.keyframes"}


def unit(module: str) -> str:
    for s in SPLIT:
        if module == s or module.startswith(s + "."):
            return s.removeprefix("autolabel.")
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "autolabel"


def main() -> int:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        contract = tomllib.load(f)["tool"]["importlinter"]["contracts"][0]
    excepted = {tuple(s.split(" -> ")) for s in contract.get("ignore_imports", [])}
    graph = grimp.build_graph("autolabel", include_external_packages=False)
    edges: set[tuple[str, str]] = set()
    for m in graph.modules:
        for imported in graph.find_modules_directly_imported_by(m):
            if (m, imported) in excepted:
                print(f"excepted (lazy, named in the contract): {m} -> {imported}")
                continue
            a, b = unit(m), unit(imported)
            if a != b and a != "autolabel":  # autolabel/__init__ is the public facade over everything
                edges.add((a, b))
    g = nx.DiGraph(sorted(edges))
    for a, b in sorted(edges):
        print(f"{a} -> {b}")
    cycles = list(nx.simple_cycles(g))
    print(f"\n{g.number_of_nodes()} packages, {g.number_of_edges()} edges, {len(cycles)} cycles")
    for c in cycles:
        print("cycle:", " -> ".join(c + c[:1]))
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
