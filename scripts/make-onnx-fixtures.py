#!/usr/bin/env python3
"""Writes the ONNX fixtures of Tests/BitSwitchONNXTests/Fixtures (good models, bad inputs, and reference
input/output tensors computed with onnxruntime). Deterministic: rerunning gives the same files.

Usage: /work/main/.venv/bin/python scripts/make-onnx-fixtures.py [out_dir]
"""
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "BitSwitchONNXTests", "Fixtures")
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(1234)


def path(name):
    return os.path.join(OUT, name)


def model(graph, opset, ir_version, extra_opsets=(), **kw):
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
    m = helper.make_model(graph, opset_imports=ops, ir_version=ir_version, **kw)
    return m


def save(m, name, check=True):
    if check:
        onnx.checker.check_model(m)
    onnx.save_model(m, path(name))


def save_reference(name, feeds):
    """Runs the saved model in onnxruntime and stores inputs/outputs as bare TensorProto files."""
    sess = ort.InferenceSession(path(name), providers=["CPUExecutionProvider"])
    outs = sess.run(None, feeds)
    stem = name[:-len(".onnx")]
    for k, (n, v) in enumerate(feeds.items()):
        onnx.save_tensor(numpy_helper.from_array(v, n), path(f"{stem}.input_{k}.pb"))
    for k, (o, v) in enumerate(zip(sess.get_outputs(), outs)):
        onnx.save_tensor(numpy_helper.from_array(v, o.name), path(f"{stem}.output_{k}.pb"))


def f32(*shape, scale=0.5):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(arr, name)


# --- good models -------------------------------------------------------------------------------------------------

def conv_bn():
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["bn1"], name="bn1", epsilon=1e-3),
        helper.make_node("Relu", ["bn1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], name="conv2", kernel_shape=[3, 3], strides=[1, 1],
                         pads=[0, 0, 0, 0], group=2, dilations=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),  # unnamed on purpose
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1, alpha=1.0, beta=1.0),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1),
    ]
    inits = [
        init("w1", f32(4, 3, 3, 3)), init("b1", f32(4)),
        init("g1", (1 + 0.1 * rng.standard_normal(4)).astype(np.float32)), init("be1", f32(4, scale=0.1)),
        init("m1", f32(4, scale=0.1)), init("v1", (0.5 + rng.random(4)).astype(np.float32)),
        init("w2", f32(6, 2, 3, 3)),
        init("fc_w", f32(5, 6)), init("fc_b", f32(5)),
    ]
    g = helper.make_graph(nodes, "conv_bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits,
                          doc_string="a small conv net")
    m = model(g, 13, 7, producer_name="bitswitch-fixtures", producer_version="1.0", doc_string="conv+bn fixture")
    helper.set_model_props(m, {"author": "make-onnx-fixtures.py", "purpose": "tests"})
    save(m, "conv_bn.onnx")
    save_reference("conv_bn.onnx", {"x": f32(1, 3, 8, 8, scale=1.0)})


def dtypes():
    f16 = (rng.standard_normal((2, 3)) * 2).astype(np.float16)
    i8 = np.array([[-128, -1, 0], [1, 64, 127]], dtype=np.int8)
    u8 = np.array([0, 1, 128, 255], dtype=np.uint8)
    i32 = np.array([-2**31, -7, 0, 2**31 - 1], dtype=np.int32)
    i64 = np.array([-2**63, -5, 0, 2**40, 2**63 - 1], dtype=np.int64)
    b = np.array([True, False, True, True, False], dtype=bool)
    i4 = np.array([-8, -3, 0, 5, 7], dtype=np.int8)          # odd count: last byte half used
    u4 = np.array([0, 1, 9, 15, 4, 2], dtype=np.uint8)
    inits = [
        helper.make_tensor("f16_raw", TensorProto.FLOAT16, f16.shape, f16.tobytes(), raw=True),
        helper.make_tensor("i8_raw", TensorProto.INT8, i8.shape, i8.tobytes(), raw=True),
        helper.make_tensor("u8_raw", TensorProto.UINT8, u8.shape, u8.tobytes(), raw=True),
        helper.make_tensor("i32_raw", TensorProto.INT32, i32.shape, i32.tobytes(), raw=True),
        helper.make_tensor("i64_raw", TensorProto.INT64, i64.shape, i64.tobytes(), raw=True),
        helper.make_tensor("bool_raw", TensorProto.BOOL, b.shape, b.tobytes(), raw=True),
        helper.make_tensor("i4_raw", TensorProto.INT4, i4.shape, bytes(pack4(i4)), raw=True),
        helper.make_tensor("u4_raw", TensorProto.UINT4, u4.shape, bytes(pack4(u4)), raw=True),
        # typed fields (no raw_data), as onnx.helper writes them by default
        helper.make_tensor("f32_typed", TensorProto.FLOAT, [3], [1.5, -2.25, 3.0]),
        helper.make_tensor("f16_typed", TensorProto.FLOAT16, f16.shape, f16.flatten().tolist()),
        helper.make_tensor("i8_typed", TensorProto.INT8, i8.shape, i8.flatten().tolist()),
        helper.make_tensor("u8_typed", TensorProto.UINT8, u8.shape, u8.tolist()),
        helper.make_tensor("i32_typed", TensorProto.INT32, i32.shape, i32.tolist()),
        helper.make_tensor("i64_typed", TensorProto.INT64, i64.shape, i64.tolist()),
        helper.make_tensor("bool_typed", TensorProto.BOOL, b.shape, b.tolist()),
        helper.make_tensor("i4_typed", TensorProto.INT4, i4.shape, i4.tolist()),
        helper.make_tensor("u4_typed", TensorProto.UINT4, u4.shape, u4.tolist()),
        helper.make_tensor("scalar_f32", TensorProto.FLOAT, [], [0.25]),
        helper.make_tensor("empty_f32", TensorProto.FLOAT, [0, 3], []),
    ]
    for t in inits:
        has_raw = t.HasField("raw_data")
        assert has_raw == t.name.endswith("_raw") or t.name in ("scalar_f32", "empty_f32"), t.name
    nodes, outs = [], []
    for t in inits:
        if t.data_type in (TensorProto.INT4, TensorProto.UINT4):
            # onnxruntime has no int4 Identity; DequantizeLinear with scale 1 shows the values just as well
            nodes.append(helper.make_node("DequantizeLinear", [t.name, "one"], [f"out_{t.name}"], name=f"dq_{t.name}"))
            outs.append(helper.make_tensor_value_info(f"out_{t.name}", TensorProto.FLOAT, list(t.dims)))
        else:
            nodes.append(helper.make_node("Identity", [t.name], [f"out_{t.name}"], name=f"id_{t.name}"))
            outs.append(helper.make_tensor_value_info(f"out_{t.name}", t.data_type, list(t.dims)))
    inits.append(helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]))
    g = helper.make_graph(nodes, "dtypes", [], outs, inits)
    save(model(g, 21, 10), "dtypes.onnx")
    save_reference("dtypes.onnx", {})


def pack4(vals):
    vals = [int(v) & 0xF for v in vals]
    if len(vals) % 2:
        vals.append(0)
    return [vals[i] | (vals[i + 1] << 4) for i in range(0, len(vals), 2)]


def external():
    w = f32(8, 16)
    bias = f32(16)
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["xw"], name="mm"),
         helper.make_node("Add", ["xw", "bias"], ["y"], name="add")],
        "external", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])], [init("w", w), init("bias", bias)])
    m = model(g, 17, 8)
    onnx.checker.check_model(m)
    if os.path.exists(path("external.bin")):
        os.remove(path("external.bin"))  # onnx appends to an existing data file
    onnx.save_model(m, path("external.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="external.bin", size_threshold=0)
    save_reference("external.onnx", {"x": f32(2, 8, scale=1.0)})


def symbolic():
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="mm"),
         helper.make_node("Add", ["h", "b"], ["h2"], name="add"),
         helper.make_node("Relu", ["h2"], ["y"], name="relu")],
        # "w" is also listed as a graph input, as IR < 4 exporters do: it stays a constant
        "symbolic", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4]),
                     helper.make_tensor_value_info("w", TensorProto.FLOAT, [4, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])],
        [init("w", f32(4, 3)), init("b", f32(3))],
        value_info=[helper.make_tensor_value_info("h", TensorProto.FLOAT, ["N", 3]),
                    helper.make_tensor_value_info("h2", TensorProto.FLOAT, None)])
    save(model(g, 17, 8), "symbolic.onnx")
    save_reference("symbolic.onnx", {"x": f32(5, 4, scale=1.0)})


def qdq():
    w = rng.integers(-127, 128, size=(4, 3, 3, 3)).astype(np.int8)
    w_scale = (0.01 + 0.02 * rng.random(4)).astype(np.float32)
    inits = [
        # scales and zero points in typed fields, as onnxruntime's quantizer writes them
        helper.make_tensor("x_scale", TensorProto.FLOAT, [], [0.05]),
        helper.make_tensor("x_zp", TensorProto.INT8, [], [3]),
        helper.make_tensor("w_q", TensorProto.INT8, w.shape, w.tobytes(), raw=True),
        helper.make_tensor("w_scale", TensorProto.FLOAT, [4], w_scale.tolist()),
        helper.make_tensor("w_zp", TensorProto.INT8, [4], [0, 0, 0, 0]),
        helper.make_tensor("y_scale", TensorProto.FLOAT, [], [0.1]),
        helper.make_tensor("y_zp", TensorProto.UINT8, [], [128]),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["xq"], name="q_x"),
        helper.make_node("DequantizeLinear", ["xq", "x_scale", "x_zp"], ["xdq"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w"], name="dq_w", axis=0),
        helper.make_node("Conv", ["xdq", "w"], ["c"], name="conv", kernel_shape=[3, 3], auto_pad="SAME_UPPER"),
        helper.make_node("QuantizeLinear", ["c", "y_scale", "y_zp"], ["cq"], name="q_c"),
        helper.make_node("DequantizeLinear", ["cq", "y_scale", "y_zp"], ["y"], name="dq_c"),
    ]
    g = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 6, 6])], inits)
    save(model(g, 13, 7), "qdq.onnx")
    save_reference("qdq.onnx", {"x": f32(1, 3, 6, 6, scale=1.0)})


def constant():
    nodes = [
        helper.make_node("Constant", [], ["shape"], name="c_shape", value_ints=[3, 2]),
        helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape"),
        helper.make_node("Constant", [], ["two"], name="c_two", value_float=2.0),
        helper.make_node("Mul", ["r", "two"], ["m"], name="mul"),
        helper.make_node("Constant", [], ["bias"], name="c_bias", value_floats=[1.0, -1.0]),
        helper.make_node("Add", ["m", "bias"], ["a"], name="add"),
        helper.make_node("Constant", [], ["idx"], name="c_idx", value_int=1),
        helper.make_node("Gather", ["a", "idx"], ["row"], name="gather", axis=0),
        helper.make_node("Constant", [], ["t"], name="c_t",
                         value=helper.make_tensor("t_val", TensorProto.FLOAT, [2], [0.5, 0.25])),
        helper.make_node("Add", ["row", "t"], ["y"], name="add2"),
    ]
    g = helper.make_graph(nodes, "constant", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2]),
                           helper.make_tensor_value_info("a", TensorProto.FLOAT, [3, 2])], [])
    save(model(g, 13, 7), "constant.onnx")
    save_reference("constant.onnx", {"x": f32(2, 3, scale=1.0)})


# --- bad inputs --------------------------------------------------------------------------------------------------

def simple_graph(nodes, inits=(), inputs=None, outputs=None, name="bad"):
    inputs = inputs if inputs is not None else [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])]
    outputs = outputs if outputs is not None else [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])]
    return helper.make_graph(nodes, name, inputs, outputs, list(inits))


def raw_tensor(name, dims, raw=b"", dtype=TensorProto.FLOAT):
    t = TensorProto()
    t.name = name
    t.data_type = dtype
    t.dims.extend(dims)
    t.raw_data = raw
    return t


def external_tensor(name, dims, location):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    e = t.external_data.add()
    e.key, e.value = "location", location
    return t


def add_with(init_tensor):
    return simple_graph([helper.make_node("Add", ["x", init_tensor.name], ["y"], name="add_w")], [init_tensor])


def bad_inputs():
    with open(path("conv_bn.onnx"), "rb") as f:
        data = f.read()
    with open(path("truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(path("text.onnx"), "w") as f:
        f.write("this is a text file, not an ONNX model\n")

    g = simple_graph([helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm_node", hidden_size=2)],
                     [init("W", f32(1, 8, 2)), init("R", f32(1, 8, 2))])
    save(model(g, 13, 7), "unsupported_op.onnx", check=False)

    g = simple_graph([helper.make_node("Add", ["x", "w_missing"], ["y"], name="add_missing")])
    save(model(g, 13, 7), "missing_input.onnx", check=False)

    g = simple_graph([
        helper.make_node("Add", ["x", "c"], ["a"], name="cyc_add"),
        helper.make_node("Relu", ["a"], ["b"], name="cyc_relu1"),
        helper.make_node("Relu", ["b"], ["c"], name="cyc_relu2"),
        helper.make_node("Identity", ["b"], ["y"], name="out"),
    ])
    save(model(g, 13, 7), "cycle.onnx", check=False)

    g = simple_graph([
        helper.make_node("Relu", ["x"], ["y"], name="relu_a"),
        helper.make_node("Sigmoid", ["x"], ["y"], name="sigmoid_b"),
    ])
    save(model(g, 13, 7), "duplicate.onnx", check=False)

    save(model(add_with(raw_tensor("w_overflow", [1 << 40, 1 << 40])), 13, 7), "overflow_dims.onnx", check=False)
    save(model(add_with(raw_tensor("w_huge", [1 << 20, 1 << 20, 1 << 10])), 13, 7), "huge_dims.onnx", check=False)
    save(model(add_with(raw_tensor("w_short", [2, 2], b"\0" * 10)), 13, 7), "short_raw.onnx", check=False)
    save(model(add_with(raw_tensor("w_neg", [2, -2])), 13, 7), "negative_dims.onnx", check=False)
    save(model(add_with(raw_tensor("w_double", [2, 2], b"\0" * 32, TensorProto.DOUBLE)), 13, 7),
         "double_init.onnx", check=False)
    save(model(add_with(raw_tensor("w_bf16", [2, 2], b"\0" * 8, TensorProto.BFLOAT16)), 13, 7),
         "bf16_init.onnx", check=False)
    t = TensorProto(name="w_typed", data_type=TensorProto.FLOAT, dims=[2, 2])
    t.float_data.extend([1.0, 2.0, 3.0])  # 3 values for 4 elements
    save(model(add_with(t), 13, 7), "typed_mismatch.onnx", check=False)

    save(model(add_with(external_tensor("w_ext", [2, 2], "missing.bin")), 13, 7), "external_missing.onnx", False)
    with open(path("external_short.bin"), "wb") as f:
        f.write(b"\0" * 8)
    save(model(add_with(external_tensor("w_ext", [2, 2], "external_short.bin")), 13, 7), "external_short.onnx",
         False)
    save(model(add_with(external_tensor("w_ext", [2, 2], "../outside.bin")), 13, 7), "external_escape.onnx",
         False)
    save(model(add_with(external_tensor("w_ext", [2, 2], "/etc/passwd")), 13, 7), "external_absolute.onnx",
         False)

    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "branch", [],
                               [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 2])])
    cond = helper.make_tensor("cond", TensorProto.BOOL, [], [True])
    g = simple_graph([helper.make_node("If", ["cond"], ["y"], name="if_node", then_branch=branch,
                                       else_branch=branch)], [cond])
    save(model(g, 13, 7), "subgraph_attr.onnx", check=False)

    sparse = helper.make_sparse_tensor(helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0]),
                                       helper.make_tensor("i", TensorProto.INT64, [1], [0]), [2, 2])
    g = simple_graph([helper.make_node("Constant", [], ["s"], name="sparse_const", sparse_value=sparse),
                      helper.make_node("Add", ["x", "s"], ["y"], name="add_s")])
    save(model(g, 13, 7), "sparse_constant.onnx", check=False)

    g = simple_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")])
    save(model(g, 5, 3), "opset5.onnx", check=False)

    m = onnx.ModelProto()
    m.ir_version = 8
    m.opset_import.add().version = 17
    save(m, "no_graph.onnx", check=False)


if __name__ == "__main__":
    conv_bn()
    dtypes()
    external()
    symbolic()
    qdq()
    constant()
    bad_inputs()
    total = sum(os.path.getsize(path(f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.normpath(OUT)}")
