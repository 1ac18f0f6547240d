"""check.py - ONNX's own checker over exported files (tests/onnx/run.sh).

Usage: python3 check.py FILE.onnx [KEY=VALUE ...]

Runs onnx.checker.check_model with full_check (the graph is type- and
shape-inferred too), then checks what sardfq.h promises of every export:
IR version 8, the default opset at 17 and nothing else imported, one input
"input" (rank 4) and one output "logits" (rank 2), and the metadata_props
entries given as KEY=VALUE. Exit 0 when all hold, 1 otherwise (a message on
stderr).
"""
import sys

import onnx


def main():
    path, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    errors = []
    if model.ir_version != 8:
        errors.append(f"ir_version {model.ir_version}, expected 8")
    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets != {"": 17}:
        errors.append(f"opset_import {opsets}, expected {{'': 17}}")
    g = model.graph
    if [i.name for i in g.input] != ["input"] or len(g.input[0].type.tensor_type.shape.dim) != 4:
        errors.append("the graph's input is not one rank-4 tensor named 'input'")
    if [o.name for o in g.output] != ["logits"] or len(g.output[0].type.tensor_type.shape.dim) != 2:
        errors.append("the graph's output is not one rank-2 tensor named 'logits'")
    meta = {p.key: p.value for p in model.metadata_props}
    for k, v in want.items():
        if meta.get(k) != v:
            errors.append(f"metadata {k}={meta.get(k)!r}, expected {v!r}")
    for e in errors:
        print(f"check.py: {path}: {e}", file=sys.stderr)
    ops = sorted({n.op_type for n in g.node})
    print(f"{path}: checker ok, {len(g.node)} nodes, ops {' '.join(ops)}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
