import Foundation

/// The golden vectors of /work/shared/spec/golden (copied here), produced by an independent PyTorch
/// implementation of METHOD.md §1–2.
enum Golden {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("golden")

    static func load<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: directory.appendingPathComponent(name)))
    }

    struct RSHR: Decodable {
        var x: [Int]
        var k: [Int]
        var rshr: [String: [Int]]
    }

    struct DoubleRounding: Decodable {
        var shape: [Int]
        var w: [Float]
        var grad_out: [Float]
        var init_rule: String
        var cases: [Case]

        struct Case: Decodable {
            var h: Int
            var b: Int
            var exact_grad: Bool
            var scale: [Float]
            var q_h: [Int]
            var q_b: [Int]
            var w_hat: [Float]
            var grad_w: [Float]
            var grad_scale: [Float]
            var alrs_eta: Double
        }
    }

    struct ActQuant: Decodable {
        var shape: [Int]
        var grad_out: [Float]
        var percentile_rule: String
        var cases: [Case]

        struct Case: Decodable {
            var b: Int
            var signed: Bool
            var lo: Float
            var hi: Float
            var x: [Float]
            var scale_init_percentile: Float
            var x_hat: [Float]
            var grad_x: [Float]
            var grad_scale: Float
        }
    }
}

func relativeError(_ a: Float, _ b: Float) -> Float {
    abs(a - b) / max(abs(b), 1e-6)
}
