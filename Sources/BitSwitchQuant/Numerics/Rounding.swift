/// Rounding arithmetic right shift: `(x + 2^(k−1)) >> k` for k ≥ 1, `x` for k = 0 — round half toward +∞,
/// what shift hardware does (METHOD.md). Computed as `(x >> k) + bit k−1 of x`: the same value without the
/// overflow of the addition near the top of the type, and still exact for shifts as wide as the type or wider.
@inline(__always)
public func rshr(_ x: Int32, _ k: Int) -> Int32 {
    precondition(k >= 0, "rshr needs a non-negative shift")
    if k == 0 { return x }
    return (x >> k) &+ ((x >> (k - 1)) & 1)
}

/// The 64-bit rounding right shift used by requantization (`rshr64`), same rule as the 32-bit one.
@inline(__always)
public func rshr(_ x: Int, _ k: Int) -> Int {
    precondition(k >= 0, "rshr needs a non-negative shift")
    if k == 0 { return x }
    return (x >> k) &+ ((x >> (k - 1)) & 1)
}

// The hot loops below avoid Float.rounded and Int32(Float): without SSE4.1 (the default x86-64 target) the
// first is a libm call and the second a range check that traps, and either keeps the loop from vectorising.
// Adding and subtracting 1.5 · 2^23 rounds to nearest-even (the IEEE default mode) any |v| ≤ 2^22; clamping to
// integer bounds before rounding gives the same result as after.

/// roundHalfEven(clamp(v, lo, hi)) for integer-valued bounds with |lo|, |hi| ≤ 2^22; NaN stays NaN.
@inline(__always)
func roundHalfEvenClamped(_ v: Float, _ lo: Float, _ hi: Float) -> Float {
    var c = v < lo ? lo : v
    c = c > hi ? hi : c
    return (c + 0x1.8p23) - 0x1.8p23
}

/// The same as an integer, with NaN mapped to 0 so a broken weight cannot produce an out-of-range integer.
@inline(__always)
func roundHalfEvenClampedInt(_ v: Float, _ lo: Float, _ hi: Float) -> Int32 {
    var c = v < lo ? lo : v
    c = c > hi ? hi : c
    c = c == c ? c : 0
    // For |c| ≤ 2^22 the sum lies in [2^23, 2^24), where the low mantissa bits hold 1.5 · 2^23's bits + round(c).
    return Int32(bitPattern: (c + 0x1.8p23).bitPattern) &- 0x4B40_0000
}

/// rshr for the small integers of the quantizers (|q| ≤ 2^22): `half` = 2^(Δ−1), or 0 when Δ = 0.
@inline(__always)
func shiftRound(_ q: Int32, half: Int32, shift: Int32) -> Int32 {
    (q &+ half) &>> shift
}

@inline(__always)
func clamp(_ q: Int32, _ lo: Int32, _ hi: Int32) -> Int32 {
    let c = q < lo ? lo : q
    return c > hi ? hi : c
}
