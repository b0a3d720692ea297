import Foundation
import Testing
@testable import BitSwitchData

private func writeMNIST(_ dir: String, train: Int, test: Int, badLabel: Bool = false, labelCount: Int? = nil) throws {
    func images(_ n: Int) -> NPYArray {
        NPYArray(shape: [n, 28, 28], data: .uint8((0..<(n * 784)).map { UInt8(truncatingIfNeeded: $0 * 7) }))
    }
    func labels(_ n: Int) -> NPYArray {
        NPYArray(shape: [n], data: .uint8((0..<n).map { UInt8($0 % 10) + (badLabel && $0 == 1 ? 10 : 0) }))
    }
    try IDX.write(images(train), to: dir + "/train-images-idx3-ubyte")
    try IDX.write(labels(labelCount ?? train), to: dir + "/train-labels-idx1-ubyte")
    try IDX.write(images(test), to: dir + "/t10k-images-idx3-ubyte")
    try IDX.write(labels(test), to: dir + "/t10k-labels-idx1-ubyte")
}

@Test func idxRoundTripsAndReadsBigEndian() throws {
    try withTempDir { dir in
        let a = NPYArray(shape: [2, 3], data: .int32([1, -2, 300, 70000, 0, -1]))
        try IDX.write(a, to: dir + "/a.idx")
        #expect(try IDX.read(path: dir + "/a.idx") == a)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/a.idx"))
        #expect(Array(bytes.prefix(12)) == [0, 0, 0x0C, 2, 0, 0, 0, 2, 0, 0, 0, 3])
        #expect(Array(bytes[12..<16]) == [0, 0, 0, 1])
        let f = NPYArray(shape: [3], data: .float32([1.5, -2, 0]))
        try IDX.write(f, to: dir + "/f.idx")
        #expect(try IDX.read(path: dir + "/f.idx") == f)
    }
}

@Test func idxReadsGzipThroughZlib() throws {
    let expected = NPYArray(shape: [2, 3, 4], data: .uint8((0..<24).map { UInt8($0 * 10) }))
    #expect(try IDX.read(path: fixtures + "/u8_2x3x4.idx.gz") == expected)
    #expect(try IDX.read(path: fixtures + "/u8_2x3x4_two_members.idx.gz") == expected)
}

@Test func loadsGzipMNISTLayout() throws {
    try withTempDir { dir in
        try writeMNIST(dir, train: 12, test: 5)
        // Compress each file with the system gzip, as the MNIST and Fashion-MNIST downloads are.
        for f in ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/bin/gzip")
            p.arguments = ["-n", dir + "/" + f]
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
        }
        let s = try DatasetSplits.load(directory: dir)
        #expect(s.train.count == 12 && s.test.count == 5)
        #expect(s.train.x[1] == Float(7) / 255)
        #expect(s.test.y == [0, 1, 2, 3, 4])
    }
}

@Test func idxRejectsBadGzipAndTruncation() throws {
    try withTempDir { dir in
        let gz = dir + "/train-images-idx3-ubyte.gz"
        try Data([0x1F, 0x8B, 8, 0]).write(to: URL(fileURLWithPath: gz))
        let e = try #require(dataError { _ = try IDX.read(path: gz) })
        #expect(e.message.contains("decompress") && e.file == gz)
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixtures + "/u8_2x3x4.idx.gz"))
        try whole.prefix(whole.count - 12).write(to: URL(fileURLWithPath: gz))
        #expect(dataError { _ = try IDX.read(path: gz) }?.message.contains("truncated") == true)
        var corrupt = whole
        corrupt[corrupt.startIndex + 12] ^= 0xFF
        try corrupt.write(to: URL(fileURLWithPath: gz))
        #expect(dataError { _ = try IDX.read(path: gz) } != nil)

        let t = dir + "/t.idx"
        try Data([0, 0, 8, 1, 0, 0, 0, 5, 1, 2]).write(to: URL(fileURLWithPath: t))
        #expect(dataError { _ = try IDX.read(path: t) }?.message.contains("truncated") == true)
        try Data([1, 0, 8, 1]).write(to: URL(fileURLWithPath: t))
        #expect(dataError { _ = try IDX.read(path: t) }?.kind == .format)
    }
}

@Test func loadsMNISTLayout() throws {
    try withTempDir { dir in
        try writeMNIST(dir, train: 12, test: 5)
        let s = try DatasetSplits.load(directory: dir)
        #expect(s.train.count == 12 && s.test.count == 5)
        #expect(s.train.sampleShape == [1, 28, 28])
        #expect(s.train.numClasses == 10)
        #expect(s.train.x.count == 12 * 784)
        #expect(s.train.x[1] == Float(7) / 255)
        #expect(s.train.x.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(s.test.y == [0, 1, 2, 3, 4])
    }
}

@Test func mnistErrorsNameTheFile() throws {
    try withTempDir { dir in
        try writeMNIST(dir, train: 12, test: 5, labelCount: 11)
        let e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("train-labels-idx1-ubyte") && e.message.contains("11 labels for 12 images"))
    }
    try withTempDir { dir in
        try writeMNIST(dir, train: 12, test: 5, badLabel: true)
        let e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("train-labels-idx1-ubyte") && e.message.contains("out of range"))
    }
    try withTempDir { dir in
        // A lone compressed file is not a complete MNIST set (the four files, plain or .gz, are read as they are).
        try Data([0x1F, 0x8B]).write(to: URL(fileURLWithPath: dir + "/train-images-idx3-ubyte.gz"))
        let e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.message.contains("no dataset found"))
    }
}

@Test func loadsCIFAR10Layout() throws {
    try withTempDir { dir in
        let sub = dir + "/cifar-10-batches-bin"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        func batch(_ labels: [UInt8]) -> Data {
            var d = Data()
            for (i, l) in labels.enumerated() {
                d.append(l)
                d.append(contentsOf: (0..<3072).map { UInt8(truncatingIfNeeded: $0 + i) })
            }
            return d
        }
        try batch([3, 9]).write(to: URL(fileURLWithPath: sub + "/data_batch_1.bin"))
        try batch([0]).write(to: URL(fileURLWithPath: sub + "/data_batch_2.bin"))
        try batch([5, 6, 7]).write(to: URL(fileURLWithPath: sub + "/test_batch.bin"))
        let s = try DatasetSplits.load(directory: dir)
        #expect(s.train.y == [3, 9, 0] && s.test.y == [5, 6, 7])
        #expect(s.train.sampleShape == [3, 32, 32] && s.train.numClasses == 10)
        #expect(s.train.x.count == 3 * 3072)
        #expect(s.train.x[3072 + 1] == Float(2) / 255)  // sample 1, byte 1 = (1 + 1)
        #expect(s.train.x[3072 * 2] == 0)

        var bad = batch([1])
        bad.removeLast()
        try bad.write(to: URL(fileURLWithPath: sub + "/test_batch.bin"))
        let e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("test_batch.bin") && e.message.contains("3073"))

        try batch([10]).write(to: URL(fileURLWithPath: sub + "/test_batch.bin"))
        #expect(dataError { _ = try DatasetSplits.load(directory: dir) }?.message.contains("label 10") == true)
    }
}

@Test func loadsNPYLayoutIncludingDataSubfolder() throws {
    try withTempDir { dir in
        let d = dir + "/data"
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        try NPYArray(shape: [4, 2, 5], data: .float32((0..<40).map { Float($0) })).write(to: d + "/x_train.npy")
        try NPYArray(shape: [4], data: .int64([0, 2, 1, 2])).write(to: d + "/y_train.npy")
        try NPYArray(shape: [2, 2, 5], data: .uint8(Array(repeating: 255, count: 20))).write(to: d + "/x_test.npy")
        try NPYArray(shape: [2, 1], data: .uint8([4, 0])).write(to: d + "/y_test.npy")
        let s = try DatasetSplits.load(directory: dir)
        #expect(s.train.sampleShape == [2, 5] && s.train.count == 4 && s.test.count == 2)
        #expect(s.train.numClasses == 5 && s.test.numClasses == 5)  // largest label over both splits + 1
        #expect(s.test.x.allSatisfy { $0 == 1 })  // uint8 scaled by 1/255
        #expect(s.test.y == [4, 0])
    }
}

@Test func npyLayoutChecks() throws {
    try withTempDir { dir in
        try NPYArray(shape: [3, 4], data: .float32(Array(repeating: 0, count: 12))).write(to: dir + "/x_train.npy")
        try NPYArray(shape: [2], data: .int32([0, 1])).write(to: dir + "/y_train.npy")
        try NPYArray(shape: [1, 4], data: .float32([0, 0, 0, 0])).write(to: dir + "/x_test.npy")
        try NPYArray(shape: [1], data: .int32([0])).write(to: dir + "/y_test.npy")
        var e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("y_train.npy") && e.message.contains("3 samples"))

        try NPYArray(shape: [3], data: .int32([0, -1, 1])).write(to: dir + "/y_train.npy")
        e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("y_train.npy") && e.message.contains("label -1"))

        try NPYArray(shape: [3], data: .float32([0, 1.5, 1])).write(to: dir + "/y_train.npy")
        e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.message.contains("floating-point") && e.message.contains("not all whole numbers"))

        // Float labels are refused even when whole: a float y usually means regression targets or one-hot rows.
        try NPYArray(shape: [3], data: .float64([0, 1, 1])).write(to: dir + "/y_train.npy")
        e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("y_train.npy") && e.message.contains("floating-point"))

        try NPYArray(shape: [3, 2], data: .float32([1, 0, 0, 1, 1, 0])).write(to: dir + "/y_train.npy")
        e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.message.contains("one-hot"))

        try NPYArray(shape: [3], data: .int64([0, 1, 1])).write(to: dir + "/y_train.npy")
        try NPYArray(shape: [1, 5], data: .float32([0, 0, 0, 0, 0])).write(to: dir + "/x_test.npy")
        e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("x_test.npy") && e.message.contains("sample shape"))

        try NPYArray(shape: [1, 4], data: .float32([0, .nan, 0, 0])).write(to: dir + "/x_test.npy")
        e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file.hasSuffix("x_test.npy") && e.message.contains("not finite"))

        try NPYArray(shape: [1, 4], data: .float32([0, 0, 0, 0])).write(to: dir + "/x_test.npy")
        let s = try DatasetSplits.load(directory: dir)
        #expect(s.train.y == [0, 1, 1] && s.train.numClasses == 2)
    }
}

@Test func emptyDirectorySaysWhatItLookedFor() throws {
    try withTempDir { dir in
        let e = try #require(dataError { _ = try DatasetSplits.load(directory: dir) })
        #expect(e.file == dir && e.message.contains("x_train.npy") && e.message.contains("train-images-idx3-ubyte"))
    }
    #expect(dataError { _ = try DatasetSplits.load(directory: "/nonexistent/dir") }?.kind == .io)
}
