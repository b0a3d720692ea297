import Foundation
import Testing
import BitSwitchIR
@testable import BitSwitchPasses

/// Each file in golden/ is "IR in, pipeline, IR out":
///
///     # pipeline: canonicalize,fold-batchnorm
///     graph ... { ... }          (input)
///     # expect:
///     graph ... { ... }          (the exact printed result)
///
/// or `# expect-error: words` instead of `# expect:`. BITSWITCH_UPDATE_GOLDEN=1 rewrites the expected
/// part from the current output (review the diff before committing).
private let goldenDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("golden")

private func goldenFiles() -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: goldenDir.path)) ?? []).filter { $0.hasSuffix(".ir") }.sorted()
}

@Test func goldenDirectoryIsPopulated() {
    #expect(goldenFiles().count >= 10)
}

@Test(arguments: goldenFiles())
func golden(_ file: String) throws {
    let url = goldenDir.appendingPathComponent(file)
    let text = try String(contentsOf: url, encoding: .utf8)
    let lines = text.components(separatedBy: "\n")
    let pipelineLine = try #require(lines.first { $0.hasPrefix("# pipeline: ") }, "\(file) has no '# pipeline:' line")
    let pipeline = try Pipeline.parse(String(pipelineLine.dropFirst("# pipeline: ".count)))
    let split = try #require(lines.firstIndex { $0.hasPrefix("# expect") }, "\(file) has no '# expect' line")
    let input = lines[..<split].joined(separator: "\n")
    let expected = lines[(split + 1)...].joined(separator: "\n")

    var g = try parseGraph(input)
    var outcome: String
    do {
        try pipeline.run(&g, context: PassContext())
        outcome = printGraph(g)
    } catch let e as BitSwitchError {
        outcome = "\(e)"
    }
    if ProcessInfo.processInfo.environment["BITSWITCH_UPDATE_GOLDEN"] == "1" {
        let header = lines[split].hasPrefix("# expect-error") ? "# expect-error: \(outcome)\n" : "# expect:\n\(outcome)"
        try (lines[..<split].joined(separator: "\n") + "\n" + header).write(to: url, atomically: true, encoding: .utf8)
        return
    }
    if lines[split].hasPrefix("# expect-error: ") {
        #expect(outcome.contains(String(lines[split].dropFirst("# expect-error: ".count))), "\(file)")
    } else {
        #expect(outcome == expected, "\(file)")
        // The expected text is itself valid IR that prints back unchanged.
        #expect(printGraph(try parseGraph(expected)) == expected, "\(file)")
    }
}
