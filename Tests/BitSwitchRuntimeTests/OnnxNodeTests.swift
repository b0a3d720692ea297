import BitSwitchIR
import Foundation
import Synchronization
import Testing
@testable import BitSwitchRuntime

/// ONNX's own node tests (regenerated with onnxruntime's outputs by scripts/make-runtime-refs.py).
struct OnnxNodeTests {
    static let compared = Mutex(0)

    /// Cases the float executor refuses on purpose, with the reason it must give.
    static let expectedUnsupported: [String: String] = [
        "test_training_dropout": "training_mode",
        "test_training_dropout_default": "training_mode",
        "test_training_dropout_default_mask": "training_mode",
        "test_training_dropout_mask": "training_mode",
        "test_dequantizelinear_blocked": "blocked",
        "test_quantizelinear_blocked_asymmetric": "blocked",
        "test_quantizelinear_blocked_symmetric": "blocked",
    ]

    @Test func onnxNodeCasesMatchOnnxRuntime() throws {
        let data = try Data(contentsOf: fixturesDir.appendingPathComponent("onnx-node-cases.json"))
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let cases = try #require(root["cases"] as? [[String: Any]])
        #expect(cases.count > 200)
        var passed = 0
        var opsSeen = Set<String>()
        for c in cases {
            let name = c["name"] as? String ?? "?"
            let result = Result { try runCase(c) }
            if let reason = Self.expectedUnsupported[name] {
                switch result {
                case .success: Issue.record("\(name): expected an unsupported error mentioning '\(reason)'")
                case .failure(let e): #expect("\(e)".contains(reason), "\(name): \(e)")
                }
                continue
            }
            switch result {
            case .failure(let e): Issue.record("\(name): \(e)")
            case .success(let problems):
                if problems.isEmpty { passed += 1; opsSeen.insert(c["op"] as? String ?? "") }
                for p in problems { Issue.record("\(name): \(p)") }
            }
        }
        let floatOps = Set(Op.supportedTypes.filter { $0.domain.isEmpty }.map(\.type))
        #expect(floatOps.subtracting(opsSeen).isEmpty, "ops without a passing ONNX case: \(floatOps.subtracting(opsSeen).sorted())")
        #expect(passed == cases.count - Self.expectedUnsupported.count)
        #expect(Self.compared.withLock { $0 } > 10_000)
        print("compared \(Self.compared.withLock { $0 }) elements; ONNX node cases: \(passed) of \(cases.count) match; \(Self.expectedUnsupported.count) refused as expected")
    }

    private func runCase(_ c: [String: Any]) throws -> [String] {
        let op = c["op"] as? String ?? ""
        let opset = c["opset"] as? Int ?? 1
        var attrs: [String: AttrValue] = [:]
        for (k, v) in c["attributes"] as? [String: [String: Any]] ?? [:] { attrs[k] = try decodeAttr(v) }
        let inputs: [Tensor?] = try (c["inputs"] as? [Any] ?? []).map { j in
            guard let t = j as? [String: Any] else { return nil }
            return try decodeTensor(t)
        }
        let outNames = c["outputNames"] as? [String] ?? []
        let node = Node(name: "n", op: try Op(type: op, domain: "", attributes: attrs, opset: opset),
                        inputs: inputs.enumerated().map { $0.element == nil ? "" : "in\($0.offset)" },
                        outputs: outNames)
        let got = try evaluateNode(node, inputs: inputs, opsets: ["": opset])
        var problems: [String] = []
        for (i, w) in (c["outputs"] as? [Any] ?? []).enumerated() {
            guard let wj = w as? [String: Any] else { continue }
            let want = try decodeTensor(wj)
            OnnxNodeTests.compared.withLock { $0 += want.count }
            if let m = mismatch(got[i], want) { problems.append("output \(i): \(m)") }
        }
        return problems
    }
}
