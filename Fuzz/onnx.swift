// libFuzzer target: ONNX import (protobuf-c unpack, tensor decoding, graph building), then the verifier and shape
// inference on whatever imports. No base directory: external data is refused, so nothing outside the input is read.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzONNX(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let buf = UnsafeRawBufferPointer(start: data, count: size)
    if var g = try? ONNXImporter.importModel(buffer: buf, path: "fuzz.onnx", baseDirectory: nil,
                                              options: ImportOptions(allowNewerOpset: true, maxMemory: 64 << 20)) {
        _ = try? verify(g)
        _ = try? inferShapes(&g)
    }
    return 0
}
