int onnx_placeholder(void){return 0;}
