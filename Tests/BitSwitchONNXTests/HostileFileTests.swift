@testable import BitSwitchONNX
import BitSwitchIR
import Foundation
import Glibc
import Testing

/// Files made to hurt the importer: opsets from the future, external data that leaves the model's folder, files
/// that shrink while they are read, constants too big for the memory bound.
@Suite struct HostileFileTests {
    /// A one-node model declaring the given opsets.
    private func model(opsets: [String: Int]) throws -> [UInt8] {
        var g = Graph(name: "g", opsets: opsets)
        g.inputs = [ValueInfo(name: "x", type: TensorType(.f32, [.known(2)]))]
        g.outputs = [ValueInfo(name: "y", type: TensorType(.f32, [.known(2)]))]
        g.nodes = [Node(name: "r", op: .relu, inputs: ["x"], outputs: ["y"])]
        return try ONNXExporter.serialize(g)
    }

    @Test func newerDefaultOpsetIsRefusedNamingDomainAndVersion() throws {
        let bytes = try model(opsets: ["": 99])
        let e = #expect(throws: BitSwitchError.self) {
            _ = try ONNXImporter.importModel(bytes: bytes, path: "future.onnx", baseDirectory: nil)
        }
        let err = try #require(e)
        #expect(err.kind == .unsupported && err.opset == 99)
        expectMentions(err, ["future.onnx", "opset 99", "default ONNX domain", "newest BitSwitch implements is 22",
                             "--allow-newer-opset"])
        // The newest implemented version itself imports.
        _ = try ONNXImporter.importModel(bytes: try model(opsets: ["": 22]), path: "ok.onnx", baseDirectory: nil)
    }

    @Test func allowNewerOpsetWarnsAndImports() throws {
        let bytes = try model(opsets: ["": 23])
        final class Sink: @unchecked Sendable { var lines: [String] = [] }
        let sink = Sink()
        let g = try ONNXImporter.importModel(bytes: bytes, path: "newer.onnx", baseDirectory: nil,
                                             options: ImportOptions(allowNewerOpset: true, warn: { sink.lines.append($0) }))
        #expect(g.nodes.count == 1)
        #expect(sink.lines.count == 1)
        #expect(sink.lines.first?.contains("opset 23") == true && sink.lines.first?.contains("warning") == true)
    }

    @Test func unknownVersionOfTheBitSwitchDomainIsRefused() throws {
        for v in [2, 0] {
            let bytes = try model(opsets: ["": 17, Op.bitswitchDomain: v])
            let e = #expect(throws: BitSwitchError.self) {
                _ = try ONNXImporter.importModel(bytes: bytes, path: "bs.onnx", baseDirectory: nil)
            }
            expectMentions(try #require(e), ["bs.onnx", "domain 'ai.bitswitch'", "\(v)"])
        }
    }

    // MARK: external data

    /// A scratch folder holding external.onnx, its location rewritten to `location` (12 bytes, like
    /// "external.bin", so the protobuf stays valid).
    private func externalModel(location: String) throws -> (dir: String, model: String) {
        precondition(location.utf8.count == 12)
        let dir = try scratchDirectory()
        var bytes = try Array(Data(contentsOf: URL(fileURLWithPath: fixture("external.onnx"))))
        let old = Array("external.bin".utf8), new = Array(location.utf8)
        var i = 0
        while i + old.count <= bytes.count {
            if Array(bytes[i..<(i + old.count)]) == old { bytes.replaceSubrange(i..<(i + old.count), with: new) }
            i += 1
        }
        let model = dir + "/model.onnx"
        try Data(bytes).write(to: URL(fileURLWithPath: model))
        return (dir, model)
    }

    private func expectRefused(_ model: String, _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
        let e = #expect(throws: BitSwitchError.self, sourceLocation: sourceLocation) {
            _ = try ONNXImporter.importModel(path: model)
        }
        if let e { expectMentions(e, ["tensor 'w'"] + parts, sourceLocation: sourceLocation) }
    }

    @Test func externalDataThroughASymlinkedFileIsRefused() throws {
        let (dir, model) = try externalModel(location: "external.bin")
        let outside = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.copyItem(atPath: fixture("external.bin"), toPath: outside + "/secret.bin")
        #expect(symlink(outside + "/secret.bin", dir + "/external.bin") == 0)
        expectRefused(model, ["symbolic link", "external.bin"])
        // A link that stays inside the folder is refused too: every link could be retargeted.
        try FileManager.default.removeItem(atPath: dir + "/external.bin")
        try FileManager.default.copyItem(atPath: fixture("external.bin"), toPath: dir + "/real.bin")
        #expect(symlink("real.bin", dir + "/external.bin") == 0)
        expectRefused(model, ["symbolic link"])
        // The real file imports.
        try FileManager.default.removeItem(atPath: dir + "/external.bin")
        try FileManager.default.moveItem(atPath: dir + "/real.bin", toPath: dir + "/external.bin")
        _ = try ONNXImporter.importModel(path: model)
    }

    @Test func externalDataThroughASymlinkedDirectoryIsRefused() throws {
        let (dir, model) = try externalModel(location: "lnk/data.bin")
        let outside = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir); try? FileManager.default.removeItem(atPath: outside) }
        try FileManager.default.copyItem(atPath: fixture("external.bin"), toPath: outside + "/data.bin")
        #expect(symlink(outside, dir + "/lnk") == 0)
        expectRefused(model, ["symbolic link 'lnk'"])
        // The same layout with a real directory imports.
        try FileManager.default.removeItem(atPath: dir + "/lnk")
        try FileManager.default.createDirectory(atPath: dir + "/lnk", withIntermediateDirectories: false)
        try FileManager.default.copyItem(atPath: outside + "/data.bin", toPath: dir + "/lnk/data.bin")
        _ = try ONNXImporter.importModel(path: model)
    }

    @Test func externalDataFromAFIFOIsRefusedWithoutHanging() throws {
        let (dir, model) = try externalModel(location: "external.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/external.bin", 0o644) == 0)
        expectRefused(model, ["is a FIFO"])
    }

    @Test func externalDataFromADeviceIsRefused() throws {
        let (dir, model) = try externalModel(location: "external.bin")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A character device like /dev/zero (1,5) needs CAP_MKNOD; a directory stands in for "not a file" otherwise.
        if mknod(dir + "/external.bin", S_IFCHR | 0o644, makedev(1, 5)) == 0 {
            expectRefused(model, ["is a character device"])
        } else {
            try FileManager.default.createDirectory(atPath: dir + "/external.bin", withIntermediateDirectories: false)
            expectRefused(model, ["is a directory"])
        }
    }

    private func makedev(_ major: UInt32, _ minor: UInt32) -> dev_t {
        dev_t((major << 8) | minor)
    }

    // MARK: memory bound

    @Test func maxMemoryIsCumulativeOverAllConstants() throws {
        // w (8x16 floats, 512 bytes) and bias (16 floats, 64 bytes): each fits in 520 bytes, both do not.
        let path = try fixture("external.onnx")
        let e = #expect(throws: BitSwitchError.self) {
            _ = try ONNXImporter.importModel(path: path, options: ImportOptions(maxMemory: 520))
        }
        expectMentions(try #require(e), ["external.onnx", "2 constant tensors need 576 bytes", "--max-memory limit of 520"])
        _ = try ONNXImporter.importModel(path: path, options: ImportOptions(maxMemory: 576))
    }

    // MARK: files that change under the importer

    @Test func modelTruncatedWhileImportingGivesAnErrorNotASignal() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let original = try Data(contentsOf: URL(fileURLWithPath: fixture("conv_bn.onnx")))
        let path = dir + "/m.onnx"
        try original.write(to: URL(fileURLWithPath: path))
        // Another thread truncates and restores the file in place while it is imported again and again. With the
        // file mapped, a truncation between map and read killed the process with SIGBUS.
        final class Flag: @unchecked Sendable { var stop = false }
        let flag = Flag()
        let writer = Thread {
            var n = 0
            while !flag.stop {
                let fd = open(path, O_WRONLY)
                if fd >= 0 {
                    _ = ftruncate(fd, off_t(n % 3 == 0 ? 0 : original.count / (n % 3 + 1)))
                    original.withUnsafeBytes { _ = pwrite(fd, $0.baseAddress, $0.count, 0) }
                    close(fd)
                }
                n += 1
            }
        }
        writer.start()
        var ok = 0, refused = 0
        for _ in 0..<300 {
            do { _ = try ONNXImporter.importModel(path: path); ok += 1 } catch is BitSwitchError { refused += 1 }
        }
        flag.stop = true
        #expect(ok + refused == 300)
    }
}

/// Inputs the fuzzer (scripts/fuzz.sh) found crashing, kept as regression tests: each must import or be refused
/// with a BitSwitchError, and so must shape inference on what imports.
@Suite struct FuzzRegressionTests {
    @Test(arguments: [("reshape-one-input.onnx", "takes 2 inputs, has 1"),
                      // A Conv with auto_pad SAME_UPPER and a stride of 0 divided by zero in shape inference.
                      ("conv-same-zero-stride.onnx", "strides and dilations must be positive")])
    func fuzzFinding(_ name: String, _ message: String) throws {
        let path = try fixture("fuzz/" + name)
        do {
            var g = try ONNXImporter.importModel(path: path, options: ImportOptions(allowNewerOpset: true))
            _ = try? verify(g)
            let e = #expect(throws: BitSwitchError.self) { try inferShapes(&g) }
            #expect(e?.description.contains(message) == true, "\(String(describing: e))")
        } catch is BitSwitchError {}
    }
}
