// libFuzzer target: the IR text parser, then the verifier and shape inference on whatever parses.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIRText(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    if var g = try? parseGraph(text) {
        _ = try? verify(g)
        _ = try? inferShapes(&g)
    }
    return 0
}
