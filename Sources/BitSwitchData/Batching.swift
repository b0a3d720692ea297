import Foundation

/// Per-channel normalisation `(x − mean_c) / std_c`. The channel axis is the first axis of a sample of rank ≥ 2
/// ([C, H, W] or [C, L]); a rank-1 sample is one channel.
public struct Normalization: Sendable, Equatable {
    public var mean: [Float]
    public var std: [Float]

    public init(mean: [Float], std: [Float]) {
        self.mean = mean
        self.std = std
    }

    public static func channels(of sampleShape: [Int]) -> Int {
        sampleShape.count >= 2 ? sampleShape[0] : 1
    }

    /// Mean and population standard deviation per channel over every sample of `dataset` (normally the training
    /// split, so the test split is normalised with the same numbers). A constant channel gets std 1 so it maps to 0.
    public static func compute(on dataset: Dataset) -> Normalization {
        let c = channels(of: dataset.sampleShape)
        let perChannel = c == 0 ? 0 : dataset.sampleSize / c
        var sum = [Double](repeating: 0, count: c)
        var sumSquares = [Double](repeating: 0, count: c)
        dataset.x.withUnsafeBufferPointer { x in
            for n in 0..<dataset.count {
                for ch in 0..<c {
                    var s = 0.0
                    var s2 = 0.0
                    let base = (n * c + ch) * perChannel
                    for i in base..<(base + perChannel) {
                        let v = Double(x[i])
                        s += v
                        s2 += v * v
                    }
                    sum[ch] += s
                    sumSquares[ch] += s2
                }
            }
        }
        let total = Double(dataset.count * perChannel)
        var mean = [Float](repeating: 0, count: c)
        var std = [Float](repeating: 1, count: c)
        guard total > 0 else { return Normalization(mean: mean, std: std) }
        for ch in 0..<c {
            let m = sum[ch] / total
            let variance = max(0, sumSquares[ch] / total - m * m)
            mean[ch] = Float(m)
            std[ch] = variance > 0 ? Float(variance.squareRoot()) : 1
        }
        return Normalization(mean: mean, std: std)
    }

    /// Normalises `x`, a contiguous batch of samples of `sampleShape`, in place.
    public func apply(to x: inout [Float], sampleShape: [Int]) {
        let c = Normalization.channels(of: sampleShape)
        let sampleSize = sampleShape.reduce(1, *)
        guard c > 0, sampleSize > 0 else { return }
        let perChannel = sampleSize / c
        let inverse = std.map { 1 / $0 }
        x.withUnsafeMutableBufferPointer { xs in
            var i = 0
            while i < xs.count {
                let ch = (i / perChannel) % c
                let m = mean[ch], r = inverse[ch]
                for j in i..<(i + perChannel) { xs[j] = (xs[j] - m) * r }
                i += perChannel
            }
        }
    }
}

/// Seeded data augmentation. For [C, H, W] samples: a random crop of the zero-padded image (offsets uniform in
/// −padding...padding on each axis) and, if enabled, a horizontal flip with probability 1/2. For [C, L] and [L]
/// samples: a random shift by −padding...padding with zero fill. Applied to the raw samples, before normalisation,
/// like torchvision's RandomCrop/RandomHorizontalFlip ahead of Normalize.
public struct Augmentation: Sendable, Equatable {
    public var padding: Int
    public var horizontalFlip: Bool

    public init(padding: Int, horizontalFlip: Bool) {
        self.padding = padding
        self.horizontalFlip = horizontalFlip
    }

    public static func supports(sampleShape: [Int]) -> Bool { (1...3).contains(sampleShape.count) }

    /// Writes the augmented `src` (one sample of `sampleShape`) to `dst`, drawing from `rng`.
    public func apply(_ src: UnsafeBufferPointer<Float>, to dst: UnsafeMutableBufferPointer<Float>, sampleShape: [Int],
                      rng: inout SplitMix64) {
        let p = max(0, padding)
        switch sampleShape.count {
        case 3:
            let (c, h, w) = (sampleShape[0], sampleShape[1], sampleShape[2])
            let dy = rng.nextInt(in: -p...p)
            let dx = rng.nextInt(in: -p...p)
            let flip = horizontalFlip && rng.nextBool()
            for ch in 0..<c {
                let plane = ch * h * w
                for y in 0..<h {
                    let sy = y + dy
                    let row = plane + y * w
                    guard sy >= 0 && sy < h else {
                        for x in 0..<w { dst[row + x] = 0 }
                        continue
                    }
                    let srcRow = plane + sy * w
                    for x in 0..<w {
                        let sx = (flip ? w - 1 - x : x) + dx
                        dst[row + x] = sx >= 0 && sx < w ? src[srcRow + sx] : 0
                    }
                }
            }
        case 1, 2:
            let l = sampleShape[sampleShape.count - 1]
            let c = sampleShape.count == 2 ? sampleShape[0] : 1
            let s = rng.nextInt(in: -p...p)
            for ch in 0..<c {
                let row = ch * l
                for i in 0..<l {
                    let si = i + s
                    dst[row + i] = si >= 0 && si < l ? src[row + si] : 0
                }
            }
        default:
            for i in 0..<min(src.count, dst.count) { dst[i] = src[i] }
        }
    }
}

/// One mini-batch: `x` is contiguous [B, sampleShape...], `indices` are the dataset positions of the samples.
public struct Batch: Sendable, Equatable {
    public var x: [Float]
    public var y: [Int32]
    public var indices: [Int]

    public var size: Int { indices.count }
}

/// The mini-batches of one epoch. With `shuffle`, the order is a Fisher–Yates permutation seeded by (seed, epoch);
/// augmentation of sample i in epoch e is seeded by (seed, e, i), so it does not depend on the batch size or order.
public struct BatchIterator: Sequence, Sendable {
    public let dataset: Dataset
    public let batchSize: Int
    public let order: [Int]
    public let dropLast: Bool
    public let augmentation: Augmentation?
    public let normalization: Normalization?
    public let seed: UInt64
    public let epoch: Int

    public init(dataset: Dataset, batchSize: Int, shuffle: Bool, seed: UInt64, epoch: Int = 0, dropLast: Bool = false,
                augmentation: Augmentation? = nil, normalization: Normalization? = nil) throws {
        guard batchSize > 0 else {
            throw DataError(.inconsistent, file: "batching", "batch size must be positive, got \(batchSize)")
        }
        if augmentation != nil && !Augmentation.supports(sampleShape: dataset.sampleShape) {
            throw DataError(.unsupported, file: "augmentation",
                            "samples of shape \(dataset.sampleShape) cannot be augmented (supported: [C,H,W], [C,L], [L])")
        }
        if let normalization {
            let c = Normalization.channels(of: dataset.sampleShape)
            guard normalization.mean.count == c, normalization.std.count == c,
                  normalization.std.allSatisfy({ $0 > 0 && $0.isFinite }) else {
                throw DataError(.inconsistent, file: "normalization",
                                "needs \(c) means and \(c) positive standard deviations for samples of shape \(dataset.sampleShape)")
            }
        }
        self.dataset = dataset
        self.batchSize = batchSize
        self.dropLast = dropLast
        self.augmentation = augmentation
        self.normalization = normalization
        self.seed = seed
        self.epoch = epoch
        if shuffle {
            var rng = SplitMix64(seed: SplitMix64.derive(seed, 0, UInt64(truncatingIfNeeded: epoch)))
            order = rng.permutation(dataset.count)
        } else {
            order = Array(0..<dataset.count)
        }
    }

    public var batchCount: Int {
        dropLast ? order.count / batchSize : (order.count + batchSize - 1) / batchSize
    }

    public func makeIterator() -> Iterator { Iterator(owner: self) }

    public struct Iterator: IteratorProtocol {
        let owner: BatchIterator
        var position = 0

        public mutating func next() -> Batch? {
            let o = owner
            let remaining = o.order.count - position
            let b = Swift.min(o.batchSize, remaining)
            if b <= 0 || (o.dropLast && b < o.batchSize) { return nil }
            let indices = Array(o.order[position..<(position + b)])
            position += b
            let n = o.dataset.sampleSize
            var x = [Float](repeating: 0, count: b * n)
            let l = o.dataset.labelsPerSample
            var y = [Int32](repeating: 0, count: b * l)
            o.dataset.x.withUnsafeBufferPointer { src in
                x.withUnsafeMutableBufferPointer { dst in
                    for (k, i) in indices.enumerated() {
                        for j in 0..<l { y[k * l + j] = o.dataset.y[i * l + j] }
                        let s = UnsafeBufferPointer(rebasing: src[(i * n)..<((i + 1) * n)])
                        let d = UnsafeMutableBufferPointer(rebasing: dst[(k * n)..<((k + 1) * n)])
                        if let aug = o.augmentation {
                            var rng = SplitMix64(seed: SplitMix64.derive(o.seed, 1, UInt64(truncatingIfNeeded: o.epoch),
                                                                         UInt64(i)))
                            aug.apply(s, to: d, sampleShape: o.dataset.sampleShape, rng: &rng)
                        } else if n > 0, let from = s.baseAddress, let to = d.baseAddress {
                            to.update(from: from, count: n)
                        }
                    }
                }
            }
            o.normalization?.apply(to: &x, sampleShape: o.dataset.sampleShape)
            return Batch(x: x, y: y, indices: indices)
        }
    }
}
