import BitSwitchIR
import CONNX
import CProtobufC

/// Bare TensorProto `.pb` files, the format of ONNX test data (`input_0.pb`, `output_0.pb`).
public enum TensorProtoIO {
    public static func read(path: String) throws -> (name: String, tensor: Tensor) {
        let bytes = try readWholeFile(path: path)
        let unpacked = bytes.withUnsafeBytes { UnpackedTensor($0) }
        guard let message = unpacked else {
            throw ONNXImporter.unparsable(byteCount: bytes.count, file: path)
        }
        return try TensorDecoder(file: path, baseDirectory: directoryOf(path), maxMemory: nil).decode(message.message)
    }

    /// Atomic, like `ONNXExporter.write`; the data goes inline as raw_data.
    public static func write(_ t: Tensor, name: String, to path: String) throws {
        let arena = CArena()
        let bytes: [UInt8]
        do {
            let p = try ModelBuilder(arena: arena).tensor(t, name: name)
            let size = onnx__tensor_proto__get_packed_size(p)
            bytes = [UInt8](unsafeUninitializedCapacity: size) { buf, n in
                n = size > 0 ? onnx__tensor_proto__pack(p, buf.baseAddress!) : 0
            }
        } catch {
            throw error.bitswitchLocated(file: path)
        }
        try writeFileAtomically(bytes, to: path)
    }
}
