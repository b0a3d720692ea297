import Foundation

/// Samples stored contiguously as [count, sampleShape...] in C order, with integer class labels: one per sample, or
/// a block of `labelShape` per sample (a token window's next tokens, [T]).
public struct Dataset: Sendable, Equatable {
    public var x: [Float]
    public var sampleShape: [Int]
    public var y: [Int32]
    public var count: Int
    public var numClasses: Int
    /// The labels of one sample: [] for one class label, [T] for a label per position.
    public var labelShape: [Int] = []
    /// The files the samples and the labels came from (the same file for CIFAR-10), for error messages; empty for
    /// datasets built in memory.
    public var xFile = ""
    public var yFile = ""

    public init(x: [Float], sampleShape: [Int], y: [Int32], numClasses: Int) {
        self.x = x
        self.sampleShape = sampleShape
        self.y = y
        self.count = y.count
        self.numClasses = numClasses
    }

    /// Samples with `labelShape` labels each (y holds count × labelShape elements).
    public init(x: [Float], sampleShape: [Int], y: [Int32], labelShape: [Int], numClasses: Int) {
        self.x = x
        self.sampleShape = sampleShape
        self.y = y
        self.labelShape = labelShape
        let per = max(1, labelShape.reduce(1, *))
        self.count = y.count / per
        self.numClasses = numClasses
    }

    public var sampleSize: Int { sampleShape.reduce(1, *) }
    /// Labels per sample (1 for classification).
    public var labelsPerSample: Int { max(1, labelShape.reduce(1, *)) }

    /// The samples at `indices`, in that order (e.g. a held-out split or the Hessian's calibration set).
    public func subset(_ indices: [Int]) -> Dataset {
        let n = sampleSize
        let l = labelsPerSample
        var xs = [Float](repeating: 0, count: indices.count * n)
        var ys = [Int32](repeating: 0, count: indices.count * l)
        for (k, i) in indices.enumerated() {
            xs.replaceSubrange((k * n)..<((k + 1) * n), with: x[(i * n)..<((i + 1) * n)])
            ys.replaceSubrange((k * l)..<((k + 1) * l), with: y[(i * l)..<((i + 1) * l)])
        }
        var d = Dataset(x: xs, sampleShape: sampleShape, y: ys, labelShape: labelShape, numClasses: numClasses)
        d.xFile = xFile; d.yFile = yFile
        return d
    }
}

public struct DatasetSplits: Sendable, Equatable {
    public var train: Dataset
    public var test: Dataset

    public init(train: Dataset, test: Dataset) {
        self.train = train
        self.test = test
    }

    /// Detects the layout of `directory` (or of its `data/` subfolder) and loads it:
    /// - `x_train.npy`, `y_train.npy`, `x_test.npy`, `y_test.npy`: x as stored (uint8 scaled by 1/255), the sample shape
    ///   is x's shape without the first axis, the class count is the largest label + 1;
    /// - MNIST IDX files (`train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-…`, plain or `.gz` as shipped
    ///   by MNIST, Fashion-MNIST and Debian's `dataset-fashion-mnist`): [1, 28, 28] in [0, 1];
    /// - CIFAR-10 binary batches (`data_batch_1.bin` … `data_batch_5.bin`, `test_batch.bin`, also inside
    ///   `cifar-10-batches-bin/`): [3, 32, 32] in [0, 1].
    public static func load(directory: String) throws -> DatasetSplits {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(.io, file: directory, "no such directory")
        }
        let candidates = [directory, directory + "/data", directory + "/cifar-10-batches-bin"]
        for dir in candidates {
            if exists(dir + "/x_train.npy") { return try loadNPY(dir) }
            if let mnist = mnistFiles(in: dir) { return try loadMNIST(mnist) }
            if exists(dir + "/test_batch.bin") || exists(dir + "/data_batch_1.bin") { return try loadCIFAR10(dir) }
        }
        for dir in candidates {
            let gz = ["x_train.npy.gz", "cifar-10-binary.tar.gz"].filter { exists(dir + "/" + $0) }
            if let first = gz.first {
                throw DataError(.format, file: dir + "/" + first, "is compressed; decompress it first (gunzip / tar xzf)")
            }
        }
        throw DataError(.io, file: directory, "no dataset found: expected x_train.npy/y_train.npy/x_test.npy/y_test.npy, MNIST IDX files (train-images-idx3-ubyte, ...) or CIFAR-10 binary batches (data_batch_1.bin, ..., test_batch.bin), here or in data/")
    }

    private static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    // MARK: NPY

    private static func loadNPY(_ dir: String) throws -> DatasetSplits {
        let train = try npySplit(x: dir + "/x_train.npy", y: dir + "/y_train.npy")
        let test = try npySplit(x: dir + "/x_test.npy", y: dir + "/y_test.npy")
        guard train.sampleShape == test.sampleShape else {
            throw DataError(.inconsistent, file: dir + "/x_test.npy", "sample shape \(test.sampleShape) differs from x_train.npy's \(train.sampleShape)")
        }
        let classes = max(Int(train.y.max() ?? 0), Int(test.y.max() ?? 0)) + 1
        var splits = DatasetSplits(train: train, test: test)
        splits.train.numClasses = classes
        splits.test.numClasses = classes
        return splits
    }

    private static func npySplit(x xPath: String, y yPath: String) throws -> Dataset {
        let xa = try NPYArray.read(path: xPath)
        let ya = try NPYArray.read(path: yPath)
        guard xa.shape.count >= 2 else {
            throw DataError(.inconsistent, file: xPath, "shape \(xa.shape): expected [count, sample dims...]")
        }
        let n = xa.shape[0]
        let x: [Float]
        switch xa.data {
        case .uint8(let v): x = v.map { Float($0) / 255 }
        case .bool:
            throw DataError(.unsupported, file: xPath, "boolean samples are not supported; store float32 or uint8")
        default:
            x = xa.floats
            if let bad = x.firstIndex(where: { !$0.isFinite }) {
                throw DataError(.inconsistent, file: xPath, "element \(bad) is not finite (\(x[bad]))")
            }
        }
        guard ya.shape == [n] || ya.shape == [n, 1] else {
            if ya.shape.count == 2 && ya.shape[0] == n {
                throw DataError(.unsupported, file: yPath, "labels of shape \(ya.shape) look one-hot; store class indices of shape [\(n)]")
            }
            throw DataError(.inconsistent, file: yPath, "shape \(ya.shape) does not match \(n) samples in \(URL(fileURLWithPath: xPath).lastPathComponent)")
        }
        guard n > 0 else {
            throw DataError(.inconsistent, file: xPath, "the split is empty (shape \(xa.shape)); it needs at least one sample")
        }
        if ya.data.isFloatingPoint {
            let whole = ya.floats.allSatisfy { $0.isFinite && $0.rounded() == $0 }
            throw DataError(.unsupported, file: yPath, "labels are floating-point (\(ya.data.descr))"
                            + (whole ? "" : " and not all whole numbers") + "; store integer class indices "
                            + "(for example y.astype(np.int64))")
        }
        let labels = ya.ints
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 > 1 << 20 }) {
            throw DataError(.inconsistent, file: yPath, "label \(labels[bad]) at index \(bad) is out of range (class indices 0..<2^20)")
        }
        var d = Dataset(x: x, sampleShape: Array(xa.shape.dropFirst()), y: labels.map { Int32($0) },
                        numClasses: Int(labels.max() ?? 0) + 1)
        d.xFile = xPath; d.yFile = yPath
        return d
    }

    // MARK: MNIST

    private struct MNISTFiles { var trainImages, trainLabels, testImages, testLabels: String }

    private static func mnistFiles(in dir: String) -> MNISTFiles? {
        // Both the original names and the common "train-images.idx3-ubyte" spelling, plain or gzip-compressed.
        func find(_ stem: String, _ kind: String) -> String? {
            [dir + "/\(stem)-\(kind)-ubyte", dir + "/\(stem).\(kind)-ubyte",
             dir + "/\(stem)-\(kind)-ubyte.gz", dir + "/\(stem).\(kind)-ubyte.gz"].first(where: exists)
        }
        guard let a = find("train-images", "idx3"), let b = find("train-labels", "idx1"),
              let c = find("t10k-images", "idx3"), let d = find("t10k-labels", "idx1") else { return nil }
        return MNISTFiles(trainImages: a, trainLabels: b, testImages: c, testLabels: d)
    }

    private static func loadMNIST(_ f: MNISTFiles) throws -> DatasetSplits {
        let train = try mnistSplit(images: f.trainImages, labels: f.trainLabels)
        let test = try mnistSplit(images: f.testImages, labels: f.testLabels)
        guard train.sampleShape == test.sampleShape else {
            throw DataError(.inconsistent, file: f.testImages, "image shape \(test.sampleShape) differs from \(f.trainImages)'s \(train.sampleShape)")
        }
        return DatasetSplits(train: train, test: test)
    }

    private static func mnistSplit(images: String, labels: String) throws -> Dataset {
        let xi = try IDX.read(path: images)
        let yi = try IDX.read(path: labels)
        guard xi.shape.count == 3, case .uint8(let pixels) = xi.data else {
            throw DataError(.inconsistent, file: images, "expected unsigned-byte images of shape [count, rows, cols], got \(xi.data.descr) \(xi.shape)")
        }
        guard yi.shape.count == 1, case .uint8(let labelBytes) = yi.data else {
            throw DataError(.inconsistent, file: labels, "expected unsigned-byte labels of shape [count], got \(yi.data.descr) \(yi.shape)")
        }
        guard yi.shape[0] == xi.shape[0] else {
            throw DataError(.inconsistent, file: labels, "\(yi.shape[0]) labels for \(xi.shape[0]) images in \(URL(fileURLWithPath: images).lastPathComponent)")
        }
        guard xi.shape[0] > 0 else {
            throw DataError(.inconsistent, file: images, "the split is empty (0 images); it needs at least one sample")
        }
        if let bad = labelBytes.firstIndex(where: { $0 > 9 }) {
            throw DataError(.inconsistent, file: labels, "label \(labelBytes[bad]) at index \(bad) is out of range 0...9")
        }
        var d = Dataset(x: pixels.map { Float($0) / 255 }, sampleShape: [1, xi.shape[1], xi.shape[2]],
                        y: labelBytes.map { Int32($0) }, numClasses: 10)
        d.xFile = images; d.yFile = labels
        return d
    }

    // MARK: CIFAR-10

    private static func loadCIFAR10(_ dir: String) throws -> DatasetSplits {
        let trainFiles = (1...5).map { dir + "/data_batch_\($0).bin" }.filter(exists)
        guard !trainFiles.isEmpty else {
            throw DataError(.io, file: dir + "/data_batch_1.bin", "no such file (CIFAR-10 training batches are data_batch_1.bin ... data_batch_5.bin)")
        }
        guard exists(dir + "/test_batch.bin") else {
            throw DataError(.io, file: dir + "/test_batch.bin", "no such file (the CIFAR-10 test batch)")
        }
        var x: [Float] = []
        var y: [Int32] = []
        for f in trainFiles {
            let b = try CIFAR10.readBatch(path: f)
            x += b.x
            y += b.y
        }
        let t = try CIFAR10.readBatch(path: dir + "/test_batch.bin")
        var train = Dataset(x: x, sampleShape: [3, 32, 32], y: y, numClasses: 10)
        var test = Dataset(x: t.x, sampleShape: [3, 32, 32], y: t.y, numClasses: 10)
        let trainNames = trainFiles.count == 1 ? trainFiles[0] : dir + "/data_batch_{1..\(trainFiles.count)}.bin"
        train.xFile = trainNames; train.yFile = trainNames
        test.xFile = dir + "/test_batch.bin"; test.yFile = test.xFile
        return DatasetSplits(train: train, test: test)
    }
}
