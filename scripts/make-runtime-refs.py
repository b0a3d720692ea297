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
ort.set_default_logger_severity(3)
from onnx.backend.test.case.node import collect_testcases

OPS = ["Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid",
       "HardSwish", "Tanh", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
       "Transpose", "Concat", "Squeeze", "Unsqueeze", "Softmax", "LogSoftmax", "Identity", "Dropout", "Pad",
       "ReduceMean", "Shape", "Gather", "QuantizeLinear", "DequantizeLinear"]
# The transformer family (issue 11); smaller cases, so the fixture stays under 1 MB.
TRANSFORMER_OPS = ["LayerNormalization", "Gelu", "Erf", "Sqrt", "Reciprocal", "Neg", "Exp", "Pow", "Cast", "Where",
                   "Equal", "Less", "Not", "Expand", "ConstantOfShape", "Range", "Slice", "Split", "ReduceSum",
                   "ReduceMax"]
OPS += TRANSFORMER_OPS
MAX_BYTES = 48 * 1024   # per case, all tensors together
MAX_BYTES_TRANSFORMER = 12 * 1024

ONNX_TO_IR = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.INT8: "i8", onnx.TensorProto.UINT8: "u8",
              onnx.TensorProto.INT32: "i32", onnx.TensorProto.INT64: "i64", onnx.TensorProto.BOOL: "bool",
              onnx.TensorProto.INT4: "i4", onnx.TensorProto.UINT4: "u4", onnx.TensorProto.DOUBLE: "f64",
              onnx.TensorProto.INT16: "i16", onnx.TensorProto.UINT16: "u16", onnx.TensorProto.UINT32: "u32",
              onnx.TensorProto.UINT64: "u64"}
CONTAINER = {"f32": "<f4", "i8": "i1", "u8": "u1", "i32": "<i4", "i64": "<i8", "bool": "u1", "i4": "i1", "u4": "u1",
             "f64": "<f8", "i16": "<i2", "u16": "<u2", "u32": "<u4", "u64": "<u8"}


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
    if t == A.TENSOR:
        arr = numpy_helper.to_array(a.t)
        return {"type": "tensor", "value": encode(arr, ONNX_TO_IR[a.t.data_type])}
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


def custom_cases():
    """Extra cases ONNX's suite lacks: depthwise/grouped/1-D/3-D conv, auto_pad with strides and dilations,
    integer broadcasting arithmetic, batched MatMul broadcasting, pooling corner cases, pad modes, per-axis QDQ."""
    rng = np.random.default_rng(7)
    f = lambda *s: rng.standard_normal(s).astype(np.float32)
    T = onnx.TensorProto
    spec = []  # (name, op, opset, attrs, [(array, onnx type) or None], n_outputs, output types)

    def add(name, op, opset, attrs, ins, outs=1, out_types=None):
        spec.append((name, op, opset, attrs, ins, outs, out_types))

    F = T.FLOAT
    add("custom_conv_depthwise_mult2", "Conv", 17, dict(group=3, pads=[1, 1, 1, 1], strides=[2, 1]),
        [(f(2, 3, 7, 6), F), (f(6, 1, 3, 3), F), (f(6), F)])
    add("custom_conv_grouped", "Conv", 17, dict(group=2, dilations=[2, 1]), [(f(2, 4, 9, 8), F), (f(6, 2, 3, 2), F)])
    add("custom_conv_same_lower_s2", "Conv", 17, dict(auto_pad="SAME_LOWER", strides=[2, 2]),
        [(f(1, 2, 9, 10), F), (f(3, 2, 3, 3), F), (f(3), F)])
    add("custom_conv_same_upper_s2", "Conv", 17, dict(auto_pad="SAME_UPPER", strides=[2, 2]),
        [(f(2, 2, 8, 7), F), (f(4, 2, 4, 4), F)])
    add("custom_conv_valid", "Conv", 17, dict(auto_pad="VALID", strides=[3, 2]), [(f(1, 1, 10, 9), F), (f(2, 1, 3, 3), F)])
    add("custom_conv_1d", "Conv", 17, dict(pads=[2, 1], strides=[2]), [(f(2, 3, 11), F), (f(4, 3, 3), F), (f(4), F)])
    add("custom_conv_3d", "Conv", 17, dict(pads=[1, 0, 1, 0, 1, 1]), [(f(1, 2, 4, 5, 3), F), (f(3, 2, 2, 3, 2), F)])
    add("custom_conv_1x1_batch", "Conv", 17, {}, [(f(3, 4, 5, 5), F), (f(6, 4, 1, 1), F), (f(6), F)])
    I32, I64, I8, U8 = T.INT32, T.INT64, T.INT8, T.UINT8
    ia = lambda lo, hi, s, dt: rng.integers(lo, hi, s).astype(dt)
    add("custom_add_i32_broadcast", "Add", 14, {}, [(ia(-100, 100, (2, 3, 4), np.int32), I32), (ia(-100, 100, (3, 1), np.int32), I32)])
    add("custom_sub_i64_broadcast", "Sub", 14, {}, [(ia(-100, 100, (4,), np.int64), I64), (ia(-100, 100, (2, 1, 4), np.int64), I64)])
    add("custom_mul_i8_wrap", "Mul", 14, {}, [(ia(-128, 127, (3, 4), np.int8), I8), (ia(-128, 127, (4,), np.int8), I8)])
    add("custom_div_i32_negative", "Div", 14, {}, [(np.array([[-7, 7, -8, 9], [5, -5, 0, 1]], np.int32), I32),
                                                   (np.array([2, -2, 3, -4], np.int32), I32)])
    add("custom_div_f32_broadcast", "Div", 14, {}, [(f(2, 1, 4), F), (f(3, 1) + 3, F)])
    add("custom_matmul_batch_broadcast", "MatMul", 13, {}, [(f(2, 1, 3, 4), F), (f(3, 4, 5), F)])
    add("custom_matmul_1d_left", "MatMul", 13, {}, [(f(4), F), (f(2, 4, 3), F)])
    add("custom_matmul_1d_right", "MatMul", 13, {}, [(f(2, 3, 4), F), (f(4), F)])
    add("custom_gemm_c_column", "Gemm", 13, dict(alpha=0.5, beta=2.0, transA=1), [(f(4, 3), F), (f(4, 5), F), (f(3, 1), F)])
    add("custom_maxpool_indices_col_major", "MaxPool", 12, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
        storage_order=1), [(f(2, 2, 7, 6), F)], outs=2, out_types=[F, I64])
    add("custom_maxpool_ceil_dilated_indices", "MaxPool", 12, dict(kernel_shape=[2, 2], strides=[2, 2], dilations=[2, 1],
        ceil_mode=1), [(f(1, 2, 9, 8), F)], outs=2, out_types=[F, I64])
    add("custom_maxpool_u8", "MaxPool", 12, dict(kernel_shape=[2, 2]), [(ia(0, 255, (1, 1, 4, 5), np.uint8), U8)],
        out_types=[U8])
    add("custom_avgpool_ceil_include_pad", "AveragePool", 19, dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
        ceil_mode=1, count_include_pad=1), [(f(1, 2, 8, 8), F)])
    add("custom_avgpool_ceil_exclude_pad", "AveragePool", 19, dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1],
        ceil_mode=1), [(f(2, 1, 7, 6), F)])
    add("custom_avgpool_same_lower", "AveragePool", 19, dict(kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_LOWER"),
        [(f(1, 1, 6, 7), F)])
    add("custom_softmax_legacy_3d", "Softmax", 11, dict(axis=1), [(f(2, 3, 4), F)])
    add("custom_logsoftmax_axis0", "LogSoftmax", 13, dict(axis=0), [(f(3, 2, 2) * 30, F)])
    for mode in ["reflect", "edge", "wrap"]:
        add(f"custom_pad_{mode}", "Pad", 19, dict(mode=mode), [(f(2, 3, 4), F), (np.array([0, 1, 2, 1, 2, 3], np.int64), I64)])
    add("custom_pad_negative_i32", "Pad", 19, {}, [(ia(-9, 9, (3, 4), np.int32), I32), (np.array([1, -1, -1, 2], np.int64), I64),
                                                  (np.array(7, np.int32), I32)])
    add("custom_qlinear_per_axis_i8", "QuantizeLinear", 21, dict(axis=1),
        [(f(2, 3, 2) * 50, F), (np.array([0.5, 0.25, 2.0], np.float32), F), (np.array([1, -3, 0], np.int8), I8)], out_types=[I8])
    add("custom_dqlinear_per_axis_u8", "DequantizeLinear", 21, dict(axis=0),
        [(ia(0, 255, (3, 2), np.uint8), U8), (np.array([0.5, 0.25, 2.0], np.float32), F), (np.array([128, 3, 0], np.uint8), U8)], out_types=[F])
    add("custom_dqlinear_i32", "DequantizeLinear", 21, {}, [(ia(-10**6, 10**6, (5,), np.int32), I32), (np.array(0.001, np.float32), F)], out_types=[F])
    add("custom_qlinear_round_half_even", "QuantizeLinear", 21, {},
        [(np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 300, -300], np.float32), F), (np.array(1.0, np.float32), F),
         (np.array(0, np.int8), I8)], out_types=[I8])
    add("custom_reducemean_middle", "ReduceMean", 18, dict(keepdims=0), [(f(2, 3, 4, 2), F), (np.array([1, -1], np.int64), I64)])
    add("custom_gather_negative_axis1", "Gather", 13, dict(axis=1), [(f(2, 4, 3), F), (np.array([[-1, 0], [2, 3]], np.int64), I64)])
    add("custom_batchnorm_training", "BatchNormalization", 15, dict(training_mode=1, momentum=0.8),
        [(f(3, 2, 2, 3), F), (f(2), F), (f(2), F), (f(2), F), (np.abs(f(2)) + 0.5, F)], outs=3, out_types=[F, F, F])
    add("custom_clip_int32_inputs", "Clip", 13, {}, [(ia(-50, 50, (10,), np.int32), I32), (np.array(-5, np.int32), I32), None])
    add("custom_hardswish", "HardSwish", 14, {}, [(f(20) * 4, F)])
    add("custom_erf", "Erf", 13, {}, [(f(4, 6) * 2, F)])
    add("custom_layernorm_axis1_nobias", "LayerNormalization", 17, dict(axis=1, epsilon=1e-3),
        [(f(2, 3, 4), F), (f(3, 4), F)], outs=3, out_types=[F, F, F])
    add("custom_gather_axis2_negative", "Gather", 13, dict(axis=2), [(f(2, 3, 5), F), (np.array([-1, 0, -5], np.int64), I64)])
    add("custom_slice_negative_steps", "Slice", 13, {}, [(f(4, 6), F), (np.array([-1, 5], np.int64), I64),
        (np.array([-10, 0], np.int64), I64), (np.array([0, 1], np.int64), I64), (np.array([-2, -2], np.int64), I64)])

    out = []
    for name, op, opset, attrs, ins, nouts, out_types in spec:
        in_names = [f"x{i}" if x is not None else "" for i, x in enumerate(ins)]
        out_names = [f"y{i}" for i in range(nouts)]
        node = helper.make_node(op, in_names, out_names, **attrs)
        graph = helper.make_graph(
            [node], name,
            [helper.make_tensor_value_info(n, t, a.shape) for n, (a, t) in ((n, x) for n, x in zip(in_names, ins) if x is not None)],
            [helper.make_tensor_value_info(n, (out_types or [ins[0][1]])[i], None) for i, n in enumerate(out_names)])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        out.append((name, model, [a for x in ins if x is not None for a in [x[0]]], in_names))
    return out


def main(out_path):
    cases, skipped = [], []
    for name, model, inputs, in_names in custom_cases():
        got, source = run_ort(model, inputs)
        if got is None:
            raise SystemExit(f"{name}: {source}")
        g = model.graph
        enc = {vi.name: encode(v, ONNX_TO_IR[elem_type(vi)]) for vi, v in zip(g.input, inputs)}
        cases.append({
            "name": name, "op": g.node[0].op_type, "opset": model.opset_import[0].version, "source": source,
            "attributes": {a.name: attr_json(a) for a in g.node[0].attribute},
            "inputs": [enc[n] if n else None for n in in_names],
            "outputs": [encode(v, ONNX_TO_IR[elem_type(vi)]) for vi, v in zip(g.output, got)],
            "outputNames": list(g.node[0].output),
        })
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
            if size > (MAX_BYTES_TRANSFORMER if node.op_type in TRANSFORMER_OPS else MAX_BYTES):
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
