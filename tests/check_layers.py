#!/usr/bin/env python3
"""check_layers.py - arrows point down in src/ (issue 11, item 5).

Usage: check_layers.py SRC_DIR [--lib LIBSARDFQ_A]

A file *uses* another when it includes that file's header (#include "x.h"
of a header under SRC_DIR; headers are found by basename, as meson's
include list finds them) or, with --lib, when it calls a function or reads
a variable that only the other file defines (from `nm -A` of the static
library: what each object leaves undefined and another object defines).
A .c file and the .h of the same name in the same folder are one unit.

Checks, on the include graph and (with --lib) on the symbol graph:
  (a) no cycle between src/ folders;
  (b) no use of a folder that is not in a strictly lower layer of LAYERS
      (upward or sideways); a folder missing from LAYERS is an error too;
  (c) no cycle between files (units).

Exit 0 when clean, 1 with a report of every finding otherwise. nm comes
from $NM (default nm); without it the symbol graph is skipped with a note.
"""
import os
import re
import subprocess
import sys
from collections import defaultdict

# The layers, lowest first. A folder may use folders of strictly lower
# layers only (README.md, section "Layout", has the same table).
LAYERS = [
    ("core",),                                     # status, alloc, threads, rng
    ("kernels", "io", "prior", "quant", "graph"),  # leaves over core
    ("model",),                                    # the model in memory, its plan
    ("exec", "formats"),                           # running a model; model files
    ("ptq", "synth"),                              # recipes: quantize, synthesize
]
LAYER = {folder: i for i, folders in enumerate(LAYERS) for folder in folders}

INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def sources(src):
    out = []
    for root, _dirs, files in os.walk(src):
        for f in sorted(files):
            if f.endswith((".c", ".h")):
                out.append(os.path.relpath(os.path.join(root, f), src))
    return sorted(out)


def folder(path):
    parts = path.split(os.sep)
    return parts[0] if len(parts) > 1 else "."


def unit(path):
    return os.path.splitext(path)[0]


def include_edges(src, files):
    by_name = defaultdict(list)
    for f in files:
        if f.endswith(".h"):
            by_name[os.path.basename(f)].append(f)
    edges, problems = defaultdict(dict), []
    for name, paths in by_name.items():
        if len(paths) > 1:
            problems.append("header %s exists twice: %s" % (name, ", ".join(paths)))
    for f in files:
        with open(os.path.join(src, f), encoding="utf-8") as fh:
            text = fh.read()
        for inc in INCLUDE.findall(text):
            target = by_name.get(os.path.basename(inc))
            if target:  # others: include/sardfq.h, system headers
                edges[f][target[0]] = "#include \"%s\"" % inc
    return edges, problems


def symbol_edges(lib, files):
    nm = os.environ.get("NM", "nm")
    try:
        out = subprocess.run([nm, "-A", lib], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        print("note: symbol graph skipped (%s -A %s: %s)" % (nm, lib, e))
        return None
    # meson names an object after its source path, '/' -> '_'
    mangled = {f.replace(os.sep, "_") + ".o": f for f in files if f.endswith(".c")}
    defs, undefs = {}, defaultdict(set)
    for line in out.splitlines():
        member, _, rest = line.rpartition(":")
        member = member.split(":")[-1]
        src = next((f for m, f in mangled.items() if member.endswith("_src_" + m) or member == m), None)
        if src is None:
            continue
        fields = rest.split()
        if len(fields) == 2 and fields[0] == "U":
            undefs[src].add(fields[1])
        elif len(fields) == 3 and fields[1] in "TDBRCGSV":
            defs[fields[2]] = src
    edges = defaultdict(dict)
    for f, names in undefs.items():
        for n in sorted(names):
            g = defs.get(n)
            if g and g != f:
                edges[f].setdefault(g, "uses " + n)
    return edges


def cycles(nodes, adj):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(adj.get(v, ())):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def check(kind, edges):
    """Report (a), (b), (c) for a file -> {file: why} graph."""
    problems = []
    fadj, uadj, why = defaultdict(set), defaultdict(set), {}
    for f, targets in edges.items():
        for g, reason in targets.items():
            a, b = folder(f), folder(g)
            if a != b:
                fadj[a].add(b)
                why.setdefault((a, b), "%s -> %s (%s)" % (f, g, reason))
                for x in (a, b):
                    if x not in LAYER:
                        problems.append("%s: folder %s/ is not in LAYERS (%s -> %s)" % (kind, x, f, g))
                if a in LAYER and b in LAYER and LAYER[b] >= LAYER[a]:
                    problems.append("%s: %s/ (layer %d) uses %s/ (layer %d), not lower: %s -> %s (%s)"
                                    % (kind, a, LAYER[a], b, LAYER[b], f, g, reason))
            if unit(f) != unit(g):
                uadj[unit(f)].add(unit(g))
                why.setdefault((unit(f), unit(g)), "%s -> %s (%s)" % (f, g, reason))
    nodes = set(fadj) | {b for a in fadj for b in fadj[a]}
    for comp in cycles(nodes, fadj):
        links = [why[(a, b)] for a in comp for b in sorted(fadj[a]) if b in comp]
        problems.append("%s: folder cycle %s: %s" % (kind, " <-> ".join(comp), "; ".join(links)))
    nodes = set(uadj) | {b for a in uadj for b in uadj[a]}
    for comp in cycles(nodes, uadj):
        links = [why[(a, b)] for a in comp for b in sorted(uadj[a]) if b in comp]
        problems.append("%s: file cycle %s: %s" % (kind, " <-> ".join(comp), "; ".join(links)))
    return sorted(set(problems))


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--lib"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    src = argv[1]
    files = sources(src)
    inc, problems = include_edges(src, files)
    problems += check("include", inc)
    checked = "includes"
    if len(argv) == 4:
        sym = symbol_edges(argv[3], files)
        if sym is not None:
            problems += check("symbol", sym)
            checked += " and symbols"
    for p in problems:
        print(p)
    print("%d files, %s checked against %d layers: %s"
          % (len(files), checked, len(LAYERS), "FAIL" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
