/// Rounding arithmetic right shift: `(x + 2^(k−1)) >> k` for k ≥ 1, `x` for k = 0 — round half toward +∞,
/// what shift hardware does (METHOD.md). Computed as `(x >> k) + bit k−1 of x`, which is the same value
/// without the overflow of the addition near `Int32.max`. Shifts of 32 or more give the mathematically
/// correct 0 (or 0 for −2^31 ≤ x < 0, since x + 2^(k−1) lies in [0, 2^k)).
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

/// roundHalfEven(v) clamped to [lo, hi] as an integer; NaN maps to 0 so a broken weight cannot trap the conversion.
@inline(__always)
func roundClamp(_ v: Float, _ lo: Float, _ hi: Float) -> Int32 {
    let r = v.rounded(.toNearestOrEven)
    if r < lo { return Int32(lo) }
    if r > hi { return Int32(hi) }
    return r == r ? Int32(r) : 0
}
