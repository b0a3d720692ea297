import BitSwitchIR
import BitSwitchONNX
import Foundation
import Testing

/// Absolute path of a file in the Fixtures resource directory.
func fixture(_ name: String) throws -> String {
    let dir = try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil))
    return dir.appendingPathComponent(name).path
}

func importFixture(_ name: String) throws -> Graph {
    try ONNXImporter.importModel(path: fixture(name))
}

/// The error importing a fixture throws; records an issue when it imports fine.
func importError(_ name: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> BitSwitchError {
    let path = try fixture(name)
    let e = #expect(throws: BitSwitchError.self, sourceLocation: sourceLocation) {
        _ = try ONNXImporter.importModel(path: path)
    }
    return try #require(e, sourceLocation: sourceLocation)
}

/// Expects every substring in the error's printed form.
func expectMentions(_ e: BitSwitchError, _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation) {
    for p in parts {
        #expect(e.description.contains(p), "'\(p)' missing from: \(e.description)", sourceLocation: sourceLocation)
    }
}

/// A fresh scratch directory per call, removed by the caller's defer.
func scratchDirectory() throws -> String {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("bitswitch-onnx-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir.path
}
