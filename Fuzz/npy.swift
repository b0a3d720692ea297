// libFuzzer target: the NPY reader (BitSwitchData compiled into this binary with the harness).
import Foundation

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzNPY(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    _ = try? NPYArray.parse(Data(bytes: data, count: size), file: "fuzz.npy")
    return 0
}
