import Foundation
import Testing
import BitSwitchIR
import BitSwitchONNX
import BitSwitchRuntime
@testable import BitSwitchPasses

/// The ONNX importer's fixtures are real exported models: their IR must print, parse back equal,
/// verify, and keep their outputs through the cleanup passes.
private let fixtureDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../BitSwitchONNXTests/Fixtures").standardized

private func importableFixtures() -> [String] {
    let files = ((try? FileManager.default.contentsOfDirectory(atPath: fixtureDir.path)) ?? []).filter { $0.hasSuffix(".onnx") }
    return files.sorted().filter { (try? ONNXImporter.importModel(path: fixtureDir.appendingPathComponent($0).path)) != nil }
}

@Test func someFixturesImport() {
    #expect(importableFixtures().count >= 5)
}

@Test(arguments: importableFixtures())
func importedModelRoundTripsAndSurvivesCleanup(_ file: String) throws {
    let path = fixtureDir.appendingPathComponent(file).path
    let g = try ONNXImporter.importModel(path: path)
    let text = printGraph(g)
    let back = try parseGraph(text)
    #expect(back == g, "\(file)")
    #expect(printGraph(back) == text)

    try verify(g)
    var cleaned = g
    try Pipeline.parse("canonicalize,fold-constants,infer-shapes").run(&cleaned, context: PassContext())
    #expect(cleaned.outputs.map(\.name) == g.outputs.map(\.name))

    // Same outputs on the fixture's own input, when it ships one.
    let inputFile = fixtureDir.appendingPathComponent(file.replacingOccurrences(of: ".onnx", with: ".input_0.pb")).path
    guard g.inputs.count == 1, FileManager.default.fileExists(atPath: inputFile) else { return }
    let x = try TensorProtoIO.read(path: inputFile).tensor
    let before = try Executor(graph: g).run([g.inputs[0].name: x])
    let after = try Executor(graph: cleaned).run([g.inputs[0].name: x])
    for o in g.outputs {
        let p = try #require(before[o.name]), q = try #require(after[o.name])
        #expect(p.shape == q.shape)
        #expect(zip(p.floats, q.floats).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($0)) }, "\(file) \(o.name)")
    }
}
