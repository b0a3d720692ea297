import Foundation

/// How a text file becomes a next-token dataset.
public struct TextWindowOptions: Sendable, Equatable {
    /// Tokens per window (the model's context length).
    public var length: Int
    /// Offset between consecutive windows (default: `length`, windows that do not overlap).
    public var stride: Int?
    /// Fraction of the text, taken from its end, held out as the test split.
    public var heldOut: Double = 0.1
    /// Token ids must be below this (the rows of the model's embedding); nil: no check.
    public var vocabularySize: Int? = nil

    public init(length: Int, stride: Int? = nil, heldOut: Double = 0.1, vocabularySize: Int? = nil) {
        self.length = length
        self.stride = stride
        self.heldOut = heldOut
        self.vocabularySize = vocabularySize
    }
}

/// A UTF-8 text file as a byte-level language-modelling dataset: the vocabulary is the 256 byte values (token id =
/// byte; for ASCII text one token per character), the text is cut into windows of `length` tokens, x =
/// tokens[i ..< i+T] and y = tokens[i+1 ..< i+T+1], at i = 0, stride, 2·stride, … The last `heldOut` fraction of the
/// text (a contiguous tail, so no window of it overlaps the training text) is the test split. Shuffling of the
/// windows is the batch iterator's, seeded like every other dataset.
public enum TextDataset {
    public static let byteVocabularySize = 256

    public static func load(path: String, options: TextWindowOptions) throws -> DatasetSplits {
        let bytes: [UInt8]
        do { bytes = [UInt8](try FileIO.read(path)) } catch let e as DataError { throw e } catch {
            throw DataError(.io, file: path, "cannot read: \(error.localizedDescription)")
        }
        return try make(bytes: bytes, file: path, options: options)
    }

    /// The same from bytes in memory (`file` names them in errors).
    public static func make(bytes: [UInt8], file: String, options: TextWindowOptions) throws -> DatasetSplits {
        let t = options.length
        guard t > 0 else { throw DataError(.inconsistent, file: file, "the window length must be positive, got \(t)") }
        let stride = options.stride ?? t
        guard stride > 0 else { throw DataError(.inconsistent, file: file, "the window stride must be positive, got \(stride)") }
        guard options.heldOut > 0, options.heldOut < 1 else {
            throw DataError(.inconsistent, file: file, "the held-out fraction must be in (0, 1), got \(options.heldOut)")
        }
        if let bad = firstInvalidUTF8(bytes) {
            throw DataError(.format, file: file, "is not UTF-8 text: byte 0x\(String(bytes[bad], radix: 16, uppercase: true)) "
                            + "at offset \(bad) \(lineAndColumn(bytes, bad)) does not continue a valid UTF-8 sequence")
        }
        if let v = options.vocabularySize, let bad = bytes.firstIndex(where: { Int($0) >= v }) {
            throw DataError(.inconsistent, file: file, "byte 0x\(String(bytes[bad], radix: 16, uppercase: true)) at offset "
                            + "\(bad) \(lineAndColumn(bytes, bad)) is token id \(bytes[bad]), outside the model's vocabulary "
                            + "of \(v) tokens (its embedding rows)")
        }
        let cut = Int((Double(bytes.count) * (1 - options.heldOut)).rounded())
        let train = windows(bytes[0..<cut], t, stride, file: file)
        let test = windows(bytes[cut...], t, stride, file: file)
        for (name, d, n) in [("training", train, cut), ("held-out", test, bytes.count - cut)] where d.count == 0 {
            throw DataError(.inconsistent, file: file, "the \(name) part has \(n) bytes, too few for one window of "
                            + "\(t) tokens and its next token (\(t + 1) bytes)")
        }
        return DatasetSplits(train: train, test: test)
    }

    private static func windows(_ text: ArraySlice<UInt8>, _ t: Int, _ stride: Int, file: String) -> Dataset {
        let base = text.startIndex
        let n = text.count >= t + 1 ? (text.count - t - 1) / stride + 1 : 0
        var x = [Float](repeating: 0, count: n * t)
        var y = [Int32](repeating: 0, count: n * t)
        for w in 0..<n {
            let s = base + w * stride
            for j in 0..<t {
                x[w * t + j] = Float(text[s + j])
                y[w * t + j] = Int32(text[s + j + 1])
            }
        }
        var d = Dataset(x: x, sampleShape: [t], y: y, labelShape: [t], numClasses: byteVocabularySize)
        d.xFile = file; d.yFile = file
        return d
    }

    /// "(line L, column C)", 1-based, for an error at byte `offset`.
    static func lineAndColumn(_ bytes: [UInt8], _ offset: Int) -> String {
        var line = 1, lineStart = 0
        for i in 0..<offset where bytes[i] == 0x0A { line += 1; lineStart = i + 1 }
        return "(line \(line), column \(offset - lineStart + 1))"
    }

    /// The offset of the first byte that is not part of a well-formed UTF-8 sequence (RFC 3629: no overlong forms,
    /// no surrogates, nothing above U+10FFFF), or nil.
    static func firstInvalidUTF8(_ b: [UInt8]) -> Int? {
        var i = 0
        let n = b.count
        while i < n {
            let c = b[i]
            if c < 0x80 { i += 1; continue }
            let len: Int, lo: UInt8, hi: UInt8
            switch c {
            case 0xC2...0xDF: len = 2; lo = 0x80; hi = 0xBF
            case 0xE0: len = 3; lo = 0xA0; hi = 0xBF
            case 0xE1...0xEC, 0xEE...0xEF: len = 3; lo = 0x80; hi = 0xBF
            case 0xED: len = 3; lo = 0x80; hi = 0x9F
            case 0xF0: len = 4; lo = 0x90; hi = 0xBF
            case 0xF1...0xF3: len = 4; lo = 0x80; hi = 0xBF
            case 0xF4: len = 4; lo = 0x80; hi = 0x8F
            default: return i
            }
            guard i + len <= n else { return i }
            guard b[i + 1] >= lo && b[i + 1] <= hi else { return i }
            for k in 2..<len where b[i + k] & 0xC0 != 0x80 { return i }
            i += len
        }
        return nil
    }
}
