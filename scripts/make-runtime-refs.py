#!/usr/bin/env python3
"""Writes Tests/BitSwitchRuntimeTests/Fixtures/onnx-node-cases.json: ONNX's own single-node test cases for the
ops the float executor implements, with ONNX Runtime's outputs as the expected values.

Run with the project venv: /work/main/.venv/bin/python scripts/make-runtime-refs.py
Cases whose tensors use element types the IR lacks, or that are large, are left out (and listed on stdout).
"""
import base64, json, os, sys, warnings
import numpy as np
import onnx
from onnx import helper, numpy_helper
import onnxruntime as ort

warnings.filterwarnings("ignore")
from onnx.backend.test.case.node import collect_testcases

OPS = ["Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid",
       "HardSwish", "Tanh", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
       "Transpose", "Concat", "Squeeze", "Unsqueeze", "Softmax", "LogSoftmax", "Identity", "Dropout", "Pad",
       "ReduceMean", "Shape", "Gather", "QuantizeLinear", "DequantizeLinear"]
MAX_BYTES = 48 * 1024   # per case, all tensors together

ONNX_TO_IR = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.INT8: "i8", onnx.TensorProto.UINT8: "u8",
              onnx.TensorProto.INT32: "i32", onnx.TensorProto.INT64: "i64", onnx.TensorProto.BOOL: "bool",
              onnx.TensorProto.INT4: "i4", onnx.TensorProto.UINT4: "u4"}
CONTAINER = {"f32": "<f4", "i8": "i1", "u8": "u1", "i32": "<i4", "i64": "<i8", "bool": "u1", "i4": "i1", "u4": "u1"}


def elem_type(vi):
    return vi.type.tensor_type.elem_type


def encode(arr, ir):
    a = np.asarray(arr)
    data = a.astype(np.int64 if ir in ("i4", "u4") else a.dtype).astype(CONTAINER[ir]).tobytes()
    return {"dtype": ir, "shape": list(a.shape), "data": base64.b64encode(data).decode()}


def attr_json(a):
    t = a.type
    A = onnx.AttributeProto
    if t == A.INT: return {"type": "int", "value": a.i}
    if t == A.FLOAT: return {"type": "float", "value": float(np.float32(a.f))}
    if t == A.STRING: return {"type": "string", "value": a.s.decode()}
    if t == A.INTS: return {"type": "ints", "value": list(a.ints)}
    if t == A.FLOATS: return {"type": "floats", "value": [float(np.float32(v)) for v in a.floats]}
    raise ValueError(f"attribute {a.name} of type {t}")


def run_ort(model, inputs):
    """ORT's outputs; when ORT lacks a kernel for the case's (newest) opset, retries at older opsets whose
    semantics for these ops and element types are the same."""
    feed = {vi.name: np.asarray(v) for vi, v in zip(model.graph.input, inputs)}
    names = [o.name for o in model.graph.output]
    first_error = None
    attempts = [(v, False) for v in [None, 23, 22, 21, 19, 18, 13]] + [(v, True) for v in [None, 23, 21]]
    for version, constant in attempts:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        if constant:
            # ORT's Python binding cannot feed int4 arrays: make every input an initializer instead.
            for vi, v in zip(list(m.graph.input), inputs):
                m.graph.initializer.append(numpy_helper.from_array(np.asarray(v), vi.name))
            del m.graph.input[:]
        if version is not None:
            cur = next(o for o in m.opset_import if o.domain in ("", "ai.onnx"))
            if cur.version <= version:
                continue
            cur.version = version
        try:
            sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
            out = sess.run(names, {} if constant else feed)
            return out, "onnxruntime" + (f" (opset {version})" if version else "") + (" (constant inputs)" if constant else "")
        except Exception as e:
            first_error = first_error or e
    return None, f"onnx-reference (onnxruntime: {str(first_error)[:160]})"


def main(out_path):
    cases, skipped = [], []
    for case in collect_testcases():
        g = case.model.graph
        if case.name.endswith("_expanded") or len(g.node) != 1 or g.node[0].op_type not in OPS:
            continue
        node = g.node[0]
        if node.domain not in ("", "ai.onnx") or not case.data_sets:
            continue
        why = None
        types = [elem_type(v) for v in list(g.input) + list(g.output)]
        if any(t not in ONNX_TO_IR for t in types):
            why = "element type"
        inputs, outputs = case.data_sets[0]
        inputs = [numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v for v in inputs]
        outputs = [numpy_helper.to_array(v) if isinstance(v, onnx.TensorProto) else v for v in outputs]
        if why is None:
            got, source = run_ort(case.model, inputs)
            if got is None:  # ORT cannot run it at all: keep ONNX's reference outputs
                got = outputs
        if why is None:
            enc_in = {vi.name: encode(v, ONNX_TO_IR[elem_type(vi)]) for vi, v in zip(g.input, inputs)}
            enc_out = [encode(v, ONNX_TO_IR[elem_type(vi)]) for vi, v in zip(g.output, got)]
            size = sum(len(t["data"]) for t in list(enc_in.values()) + enc_out)
            if size > MAX_BYTES:
                why = f"size {size}"
        if why:
            skipped.append((case.name, why))
            continue
        opset = next((o.version for o in case.model.opset_import if o.domain in ("", "ai.onnx")), 1)
        cases.append({
            "name": case.name, "op": node.op_type, "opset": opset, "source": source,
            "attributes": {a.name: attr_json(a) for a in node.attribute},
            "inputs": [enc_in[n] if n else None for n in node.input],
            "outputs": [o if n else None for n, o in zip(node.output, enc_out)] if len(node.output) == len(enc_out)
                       else enc_out,
            "outputNames": list(node.output),
        })
    with open(out_path, "w") as f:
        json.dump({"generator": "scripts/make-runtime-refs.py", "onnx": onnx.__version__,
                   "onnxruntime": ort.__version__, "cases": cases}, f, separators=(",", ":"))
    print(f"{len(cases)} cases, {os.path.getsize(out_path)} bytes -> {out_path}")
    for name, why in skipped:
        print(f"skipped {name}: {why}")


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "Tests", "BitSwitchRuntimeTests", "Fixtures", "onnx-node-cases.json"))
