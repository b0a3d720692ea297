import Foundation

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seedable generator whose output is fixed by its seed on every
/// machine and Swift version. Every random choice in BitSwitch goes through it, together with the helpers below,
/// which do not use the standard library's sampling algorithms (those may change between Swift releases).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed for an independent stream identified by `components` (epoch, sample index, layer, ...),
    /// so streams do not depend on how many numbers other streams drew.
    public static func derive(_ seed: UInt64, _ components: UInt64...) -> UInt64 {
        var g = SplitMix64(seed: seed)
        var s = g.next()
        for c in components {
            g = SplitMix64(seed: s ^ (c &* 0xD6E8_FEB8_6659_FD93))
            s = g.next()
        }
        return s
    }

    /// Uniform in `0..<n` without modulo bias (Lemire's multiply-shift with rejection). `n` must be positive.
    public mutating func nextInt(below n: Int) -> Int {
        precondition(n > 0, "nextInt(below:) needs a positive bound")
        let bound = UInt64(n)
        var m = next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Uniform in the closed range.
    public mutating func nextInt(in range: ClosedRange<Int>) -> Int {
        range.lowerBound + nextInt(below: range.upperBound - range.lowerBound + 1)
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float { Float(next() >> 40) * 0x1p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextDouble() -> Double { Double(next() >> 11) * 0x1p-53 }

    public mutating func nextBool() -> Bool { next() >> 63 == 1 }

    /// Standard normal by Box–Muller (one of the pair is used, so each call draws exactly two numbers).
    public mutating func nextGaussian() -> Double {
        let u1 = 1 - nextDouble()  // (0, 1], keeps log finite
        let u2 = nextDouble()
        return (-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2)
    }

    /// Fisher–Yates, written out so the permutation for a seed never changes with the standard library.
    public mutating func shuffle<T>(_ a: inout [T]) {
        var i = a.count - 1
        while i > 0 {
            let j = nextInt(below: i + 1)
            if i != j { a.swapAt(i, j) }
            i -= 1
        }
    }

    /// A uniformly random permutation of `0..<n`.
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        shuffle(&p)
        return p
    }
}
