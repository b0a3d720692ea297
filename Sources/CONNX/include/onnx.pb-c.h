int onnx_placeholder(void);
