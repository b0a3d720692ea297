import BitSwitchIR
import CKernels

extension WindowGeometry {
    /// The C view, padded to 3-D with leading extents of 1.
    var c: bs_geom {
        func p(_ a: [Int], _ fill: Int) -> [Int] { [Int](repeating: fill, count: 3 - a.count) + a }
        let i = p(input, 1), o = p(output, 1), k = p(kernel, 1), s = p(strides, 1), pb = p(padsBegin, 0)
        let d = p(dilations, 1)
        return bs_geom(d: i[0], h: i[1], w: i[2], od: o[0], oh: o[1], ow: o[2], kd: k[0], kh: k[1], kw: k[2],
                       sd: s[0], sh: s[1], sw: s[2], pd: pb[0], ph: pb[1], pw: pb[2], dd: d[0], dh: d[1], dw: d[2])
    }
    var cPadsEnd: (Int, Int, Int) {
        let e = [Int](repeating: 0, count: 3 - padsEnd.count) + padsEnd
        return (e[0], e[1], e[2])
    }

}
