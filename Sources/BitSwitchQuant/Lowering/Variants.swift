import BitSwitchIR
import Foundation

/// Integer graphs of one model for several bit assignments, ready for the C emitter: one per requested profile,
/// plus (with per-layer switching) enough more that every parametric node has a variant for every combination of
/// the layer bit-widths its parameters depend on, so `bs_set_layer_bits` can move any one layer (weights and input
/// activation at the same bit-width) while the others stay where they are.
public struct LoweredVariants {
    public var variants: [Graph]
    /// Each requested profile's name and the index of its variant.
    public var profiles: [(name: String, variant: Int)]
}

/// Lowers `graph` for every profile in `profiles` and, when `perLayerSwitching`, for the cover described above.
/// The cover: layers (and the profile default "*") whose bits meet in one node's parameters get different colours
/// of a greedy colouring; every tuple of bit-widths over the colours is one variant (|B|^colours variants).
public func lowerVariants(_ graph: Graph, profiles: [(name: String, profile: Profile)], perLayerSwitching: Bool = true,
                          maxVariants: Int = 512, log: @escaping (String) -> Void = { _ in }) throws -> LoweredVariants {
    let g = try storeQuantized(graph)
    var variants: [Graph] = []
    var named: [(name: String, variant: Int)] = []
    for (name, p) in profiles {
        let a = try p.resolve(in: g)
        variants.append(try lowerToIntegers(g, assignment: a, log: log))
        named.append((name, variants.count - 1))
    }
    guard perLayerSwitching, let probe = variants.first ?? (try? lowerToIntegers(g, log: log)) else {
        return LoweredVariants(variants: variants, profiles: named)
    }
    let layers = quantizedLayers(g)
    guard let bits = layers.first?.bits, bits.count > 1 else { return LoweredVariants(variants: variants, profiles: named) }

    // Which layers meet in one node's parameters.
    let sitesJSON = probe.metadata[LoweringMetadata.sites] ?? "{}"
    let nodeSites = (try? JSONSerialization.jsonObject(with: Data(sitesJSON.utf8))) as? [String: [String]] ?? [:]
    func layerOf(_ site: String) -> String {
        if site == LoweringMetadata.defaultSite { return site }
        if let r = site.range(of: ":", options: .backwards) { return String(site[..<r.lowerBound]) }
        return site
    }
    var neighbours: [String: Set<String>] = [:]
    var members = Set(layers.filter(\.isSwitchable).map(\.name) + [LoweringMetadata.defaultSite])
    for (_, sites) in nodeSites {
        let ls = Set(sites.map(layerOf))
        members.formUnion(ls)
        for a in ls { neighbours[a, default: []].formUnion(ls.subtracting([a])) }
    }
    var colour: [String: Int] = [:]
    for l in members.sorted(by: { (neighbours[$0]?.count ?? 0, $1) > (neighbours[$1]?.count ?? 0, $0) }) {
        let used = Set((neighbours[l] ?? []).compactMap { colour[$0] })
        colour[l] = (0...).first { !used.contains($0) }!
    }
    let colours = (colour.values.max() ?? 0) + 1
    let total = Int(pow(Double(bits.count), Double(colours)))
    guard total <= maxVariants else {
        log("emit: per-layer switching needs \(total) lowered variants (> \(maxVariants)); only the listed profiles are compiled in")
        return LoweredVariants(variants: variants, profiles: named)
    }
    let siteOf = IntegerLowering.sites(of: layers)
    for k in 0..<total {
        var t = [Int](repeating: 0, count: colours), r = k
        for c in 0..<colours { t[c] = bits[r % bits.count]; r /= bits.count }
        func bitsOf(_ layer: String) -> Int { t[colour[layer] ?? 0] }
        var a = BitAssignment(defaultBits: bitsOf(LoweringMetadata.defaultSite))
        for (node, site) in siteOf { a.nodes[node] = bitsOf(layerOf(site)) }
        variants.append(try lowerToIntegers(g, assignment: a, log: log))
    }
    return LoweredVariants(variants: variants, profiles: named)
}
