import ArgumentParser
import BitSwitchCodegen
import BitSwitchIR
import BitSwitchQuant
import Foundation

/// How `run` and `eval` execute a model (`--backend`).
enum Backend: String, ExpressibleByArgument, CaseIterable {
    /// The graph as it is, quant-dialect ops in float (fake-quant).
    case ref
    /// Lowered to integer ops (docs/int-ops.md) and run by the bit-exact Swift interpreter.
    case int
    /// Lowered, emitted as C, built (cached by content hash), loaded and run in place.
    case c
}

/// `--bits` and `--profile` as one profile (docs/profiles.md).
func selectedProfile(bits: Int?, profile: String?) throws -> Profile {
    var p = try profile.map { try Profile.load(path: $0) } ?? Profile()
    if let bits { p.defaultBits = bits }
    return p
}

/// A model's integer form for one profile: itself when already lowered; otherwise lowered (QDQ models from other
/// tools need no profile). Errors name the model file.
func integerGraph(_ g: Graph, profile: Profile, file: String, profileFile: String? = nil) throws -> Graph {
    if g.nodes.contains(where: { $0.op.isInteger }) { return g }
    do {
        let a = quantizedLayers(g).isEmpty ? BitAssignment() : try profile.resolve(in: g, file: profileFile)
        return try lowerToIntegers(g, assignment: a, log: { Terminal.note($0) })
    } catch let e as BitSwitchError { throw e.located(file: file) }
}

/// What `emit` compiles: every named profile (plus, with per-layer switching, the variants that let
/// `bs_set_layer_bits` move any layer), or the model itself when it is already lowered.
func emitInput(_ g: Graph, profiles: [(name: String, profile: Profile)], perLayer: Bool, file: String) throws -> EmitInput {
    if g.nodes.contains(where: { $0.op.isInteger }) { return EmitInput(graph: g) }
    do {
        if quantizedLayers(g).isEmpty { return EmitInput(graph: try lowerToIntegers(g, log: { Terminal.note($0) })) }
        let v = try lowerVariants(g, profiles: profiles, perLayerSwitching: perLayer, log: { Terminal.note($0) })
        return EmitInput(variants: v.variants, profiles: v.profiles)
    } catch let e as BitSwitchError { throw e.located(file: file) }
}

/// `--profiles 8,6,4,2,p.json`: uniform bit-widths and profile files, in order; empty: every trained bit-width.
func parseProfiles(_ spec: String?, model g: Graph) throws -> [(name: String, profile: Profile)] {
    guard let spec, !spec.isEmpty else {
        let bits = quantizedLayers(g).first?.bits ?? []
        return bits.map { ("\($0)", Profile.uniform($0)) }
    }
    return try spec.split(separator: ",").map { item in
        let s = String(item)
        if let b = Int(s) { return (s, Profile.uniform(b)) }
        let name = ((s as NSString).lastPathComponent as NSString).deletingPathExtension
        return (name, try Profile.load(path: s))
    }
}
