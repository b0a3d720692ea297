"""Writes Tests/CLITests/Fixtures/awkward_names.onnx: graph outputs whose names are not file names."""
import onnx
from onnx import helper, TensorProto

g = helper.make_graph([helper.make_node("Relu", ["x"], ["out/relu:0"], name="relu"),
                       helper.make_node("Sigmoid", ["x"], ["../escape"], name="sig")], "g",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3])],
                      [helper.make_tensor_value_info("out/relu:0", TensorProto.FLOAT, ["N", 3]),
                       helper.make_tensor_value_info("../escape", TensorProto.FLOAT, ["N", 3])])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
onnx.checker.check_model(m)
onnx.save(m, "Tests/CLITests/Fixtures/awkward_names.onnx")
