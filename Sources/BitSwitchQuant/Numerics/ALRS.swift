/// The ALRS factor η_b that multiplies the learning rate of the scale parameter group at bit-width `bits`
/// (METHOD.md §4): with D = max(bitSet) − bits, η = 10^(−D/2) for even D and 5 · 10^(−(D+1)/2) for odd D.
/// {8,6,4,2} → 1, 0.1, 0.01, 0.001; {4,3,2} → 1, 0.5, 0.1.
public func alrsFactor(bits: Int, bitSet: [Int]) -> Double {
    let top = bitSet.max() ?? bits
    let d = max(0, top - bits)
    // 10^k as an exact integer-valued Double, so 1 / 10^k and 5 / 10^k are correctly rounded.
    var power = 1.0
    for _ in 0..<((d + 1) / 2) { power *= 10 }
    return (d % 2 == 0 ? 1 : 5) / power
}
