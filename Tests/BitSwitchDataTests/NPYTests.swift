import Foundation
import Testing
@testable import BitSwitchData

@Test func npyRoundTripsEveryDtype() throws {
    let arrays: [NPYArray] = [
        NPYArray(shape: [2, 3], data: .float32([0, -1.5, 2, .infinity, 1e-30, 3])),
        NPYArray(shape: [3], data: .float64([1.25, -2, .pi])),
        NPYArray(shape: [2, 1, 2], data: .int64([Int64.min, -1, 0, Int64.max])),
        NPYArray(shape: [4], data: .int32([Int32.min, -7, 7, Int32.max])),
        NPYArray(shape: [2, 2], data: .uint8([0, 1, 128, 255])),
        NPYArray(shape: [3], data: .int8([-128, 0, 127])),
        NPYArray(shape: [2], data: .bool([true, false])),
        NPYArray(shape: [], data: .float32([42])),
        NPYArray(shape: [0, 5], data: .float32([])),
    ]
    try withTempDir { dir in
        for (i, a) in arrays.enumerated() {
            let path = dir + "/a\(i).npy"
            try a.write(to: path)
            let b = try NPYArray.read(path: path)
            #expect(b == a)
            // The data starts on a 64-byte boundary, like NumPy writes it.
            let size = try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? -1
            #expect((size - a.data.count * (a.data.descr.hasSuffix("8") ? 8 : a.data.descr.hasSuffix("4") ? 4 : 1)) % 64 == 0)
        }
        // Atomic write leaves no temporary file behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).allSatisfy { $0.hasSuffix(".npy") && !$0.hasPrefix(".") })
    }
}

@Test func npyVersion2Headers() throws {
    // Written by NumPy at version 2.0.
    let a = try NPYArray.read(path: fixtures + "/i32_v2.npy")
    #expect(a.shape == [2, 2])
    #expect(a.data == .int32([1, -2, 3, -4]))
    // A header over 65535 bytes (30000 unit dimensions) needs the 4-byte length of version 2.0.
    try withTempDir { dir in
        let big = NPYArray(shape: Array(repeating: 1, count: 30000), data: .float32([7]))
        try big.write(to: dir + "/big.npy")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: dir + "/big.npy"))
        #expect(bytes[6] == 2)
        #expect(try NPYArray.read(path: dir + "/big.npy") == big)
    }
}

@Test func npyReadsFilesWrittenByNumPy() throws {
    let f = try NPYArray.read(path: fixtures + "/f32_2x3.npy")
    #expect(f.shape == [2, 3])
    #expect(f.floats == [-0.5, -0.25, 0, 0.25, 0.5, 0.75])
    let i = try NPYArray.read(path: fixtures + "/i64_4.npy")
    #expect(i.ints == [-3, 0, 7, 1 << 40])
    let u = try NPYArray.read(path: fixtures + "/u8_2x2x2.npy")
    #expect(u.shape == [2, 2, 2])
    #expect(u.data == .uint8([0, 30, 60, 90, 120, 150, 180, 210]))
    let b = try NPYArray.read(path: fixtures + "/bool_3.npy")
    #expect(b.data == .bool([true, false, true]))
    #expect(b.floats == [1, 0, 1])
    let s = try NPYArray.read(path: fixtures + "/f64_scalar.npy")
    #expect(s.shape == [])
    #expect(s.data == .float64([2.5]))
}

@Test func npyRejectsUnsupportedVariantsNamingTheFile() throws {
    for (name, words) in [("fortran.npy", "Fortran"), ("bigendian.npy", "big-endian"), ("complex.npy", "'<c8'")] {
        let path = fixtures + "/" + name
        let e = try #require(dataError { _ = try NPYArray.read(path: path) })
        #expect(e.kind == .unsupported)
        #expect(e.description.contains(path))
        #expect(e.description.contains(words))
    }
}

@Test func npyRejectsMalformedFiles() throws {
    try withTempDir { dir in
        let notNPY = dir + "/text.npy"
        try Data("hello world, not numpy".utf8).write(to: URL(fileURLWithPath: notNPY))
        #expect(dataError { _ = try NPYArray.read(path: notNPY) }?.kind == .format)

        let truncated = dir + "/truncated.npy"
        try NPYArray(shape: [10], data: .float32(Array(repeating: 1, count: 10))).write(to: truncated)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: truncated))
        try bytes.dropLast(4).write(to: URL(fileURLWithPath: truncated))
        let e = try #require(dataError { _ = try NPYArray.read(path: truncated) })
        #expect(e.kind == .format && e.message.contains("truncated") && e.file == truncated)

        // A shape whose element count fits in Int but whose byte count does not (the fuzzer's find): an error, no trap.
        let huge = dir + "/huge.npy"
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (\(1 << 62),), }\n"
        try Data([0x93, 0x4E, 0x55, 0x4D, 0x50, 0x59, 1, 0, UInt8(header.utf8.count), 0] + Array(header.utf8))
            .write(to: URL(fileURLWithPath: huge))
        let h = try #require(dataError { _ = try NPYArray.read(path: huge) })
        #expect(h.kind == .format && h.message.contains("truncated") && h.file == huge)

        let missing = dir + "/missing.npy"
        #expect(dataError { _ = try NPYArray.read(path: missing) }?.description.contains(missing) == true)

        let gz = dir + "/x.npy"
        try Data([0x1F, 0x8B, 8, 0, 0, 0]).write(to: URL(fileURLWithPath: gz))
        #expect(dataError { _ = try NPYArray.read(path: gz) }?.message.contains("gunzip") == true)

        #expect(dataError { try NPYArray(shape: [3], data: .float32([1])).write(to: dir + "/bad.npy") }?.kind == .inconsistent)
    }
}

@Test func intsOfFloatDataTruncateAndNeverTrap() {
    let a = NPYArray(shape: [4], data: .float32([2.9, -1.5, .nan, 1e30]))
    #expect(a.ints == [2, -1, 0, 0])
}
