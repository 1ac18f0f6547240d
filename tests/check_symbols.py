#!/usr/bin/env python3
"""Packaging checks on the built shared library (run as meson tests).

  check_symbols.py symbols LIB MAP [HEADER]
      The dynamic symbols LIB defines (nm -D --defined-only) must be exactly
      the names listed under `global:` in the version script MAP, each bound
      to the map node that lists it (name@@NODE), and MAP must end every
      release with `local: *;`. With HEADER, the functions the header declares
      with SARDFQ_API must be exactly the map's names too.

  check_symbols.py soname LIB EXPECTED
      readelf -d LIB must show SONAME EXPECTED, and a file or link of that
      name must sit beside LIB (what the dynamic loader opens).

Tools come from $NM and $READELF (default nm, readelf). Exit 0 on success,
1 with a report of every difference otherwise, 77 (meson's skip) if a tool
is missing.
"""
import os
import re
import shutil
import subprocess
import sys

SKIP = 77


def tool(env, default):
    exe = os.environ.get(env, default)
    if shutil.which(exe) is None:
        print(f"{exe} not found; skipping", file=sys.stderr)
        sys.exit(SKIP)
    return exe


def exported(lib):
    """{name: version node or ''} of the global symbols LIB defines."""
    out = subprocess.run([tool("NM", "nm"), "-D", "--defined-only", lib],
                         check=True, capture_output=True, text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        # 'A' is the version node's own absolute symbol; lowercase kinds are
        # local, except 'u' (unique global) and 'i' (GNU ifunc).
        if kind == "A" or (kind.islower() and kind not in "ui"):
            continue
        node = ""
        if "@" in name:
            name, _, node = name.partition("@")
            node = node.lstrip("@")
        syms[name] = node
    return syms


def map_globals(path):
    """({name: node}, [problems]) from a GNU ld version script."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"#[^\n]*", " ", text)
    names, problems = {}, []
    for m in re.finditer(r"([A-Za-z_][\w.]*)\s*\{(.*?)\}\s*([\w.]*)\s*;", text, re.S):
        node, body = m.group(1), m.group(2)
        scope = None
        for tok in re.findall(r"[\w.*]+:|[^\s;]+", body):
            if tok.endswith(":"):
                scope = tok[:-1]
            elif scope == "global":
                if tok in names:
                    problems.append(f"{tok} is listed twice (nodes {names[tok]} and {node})")
                names[tok] = node
            elif scope == "local" and tok != "*":
                problems.append(f"node {node}: unexpected local entry {tok}")
    if not names:
        problems.append(f"{path}: no global: names found")
    if not re.search(r"local:\s*\*\s*;", text):
        problems.append(f"{path}: no `local: *;` catch-all, so every symbol would leak")
    return names, problems


def header_api(path):
    """Function names the header declares with SARDFQ_API."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(r"^\s*#(?:[^\n]*\\\n)*[^\n]*", " ", text, flags=re.M)
    names = set()
    for m in re.finditer(r"\bSARDFQ_API\b([^;(){}]*)\(", text):
        names.add(re.findall(r"\w+", m.group(1))[-1])
    return names


def diff(label_a, a, label_b, b):
    lines = []
    for name in sorted(a - b):
        lines.append(f"  in {label_a} but not in {label_b}: {name}")
    for name in sorted(b - a):
        lines.append(f"  in {label_b} but not in {label_a}: {name}")
    return lines


def check_symbols(lib, mapfile, header=None):
    syms = exported(lib)
    listed, problems = map_globals(mapfile)
    report = list(problems)
    missing = sorted(set(listed) - set(syms))
    extra = sorted(set(syms) - set(listed))
    if missing:
        report.append(f"listed in {os.path.basename(mapfile)} but not exported "
                      f"({len(missing)}):")
        report += [f"  {n}" for n in missing]
    if extra:
        report.append(f"exported but not listed in {os.path.basename(mapfile)} "
                      f"({len(extra)}):")
        report += [f"  {n}" for n in extra]
    for name in sorted(set(syms) & set(listed)):
        if syms[name] != listed[name]:
            report.append(f"{name} is bound to version '{syms[name] or '(none)'}'"
                          f" but listed in node {listed[name]}")
    if header:
        d = diff("the header (SARDFQ_API)", header_api(header), "the map", set(listed))
        if d:
            report.append("header and map disagree:")
            report += d
    if report:
        print(f"{lib}: exported symbols do not match {mapfile}", file=sys.stderr)
        print("\n".join(report), file=sys.stderr)
        return 1
    print(f"{len(syms)} exported symbols match {os.path.basename(mapfile)}"
          + (" and the header" if header else ""))
    return 0


def check_soname(lib, expected):
    out = subprocess.run([tool("READELF", "readelf"), "-d", lib],
                         check=True, capture_output=True, text=True).stdout
    found = re.findall(r"\(SONAME\)\s+Library soname: \[([^\]]*)\]", out)
    if found != [expected]:
        print(f"{lib}: SONAME is {found or 'missing'}, expected {expected}", file=sys.stderr)
        return 1
    beside = os.path.join(os.path.dirname(lib) or ".", expected)
    if not os.path.exists(beside):
        print(f"{lib}: no {expected} beside it", file=sys.stderr)
        return 1
    print(f"SONAME {expected}")
    return 0


def main(argv):
    if len(argv) >= 3 and argv[0] == "symbols" and len(argv) <= 4:
        return check_symbols(*argv[1:])
    if len(argv) == 3 and argv[0] == "soname":
        return check_soname(argv[1], argv[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
