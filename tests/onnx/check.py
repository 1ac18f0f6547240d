"""check.py - ONNX's own checker over exported files (tests/onnx/run.sh).

Usage: python3 check.py FILE.onnx [KEY=VALUE ...]
       python3 check.py --fused OPTIMIZED.onnx EXPECTED

Runs onnx.checker.check_model with full_check (the graph is type- and
shape-inferred too), then checks what sardfq.h promises of every export:
IR version 8, the default opset at 17 and nothing else imported, one input
"input" (rank 4) and one output "logits" (rank 2), and the metadata_props
entries given as KEY=VALUE. Exit 0 when all hold, 1 otherwise (a message on
stderr).

--fused counts, in ONNX Runtime's optimized graph of a model
(ort_optimized), the products it runs on integer kernels (QLinearMatMul,
MatMulIntegerToFloat, QGemm, MatMulInteger, DynamicQuantizeMatMul) and
exits 1 unless there are EXPECTED of them.
"""
import sys

import onnx


FUSED = ("QLinearMatMul", "MatMulIntegerToFloat", "QGemm", "MatMulInteger", "DynamicQuantizeMatMul")


def fused(path, expected):
    model = onnx.load(path)
    ops = [n.op_type for n in model.graph.node]
    n = sum(op in FUSED for op in ops)
    left = sum(op in ("MatMul", "Gemm", "FusedMatMul") for op in ops)
    print(f"{path}: {n} integer products ({', '.join(f'{o} {ops.count(o)}' for o in FUSED if o in ops)}), "
          f"{left} float products; expected {expected} integer")
    return 0 if n == int(expected) else 1


def main():
    if sys.argv[1] == "--fused":
        return fused(sys.argv[2], sys.argv[3])
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
