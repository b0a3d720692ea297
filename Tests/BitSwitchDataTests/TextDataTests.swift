import Testing
@testable import BitSwitchData

@Suite struct TextDataTests {
    @Test func windowsAreNextTokenPairs() throws {
        let text = Array("abcdefghijklmnopqrstuvwxyz0123".utf8)   // 30 bytes
        let s = try TextDataset.make(bytes: text, file: "t.txt", options: TextWindowOptions(length: 4, heldOut: 0.2))
        // Training part: the first 24 bytes → windows at 0, 4, … while i + 5 <= 24: 5 windows.
        #expect(s.train.count == 5 && s.train.sampleShape == [4] && s.train.labelShape == [4])
        #expect(s.train.x[0..<4].map { UInt8($0) } == Array("abcd".utf8))
        #expect(s.train.y[0..<4].map { UInt8($0) } == Array("bcde".utf8))
        #expect(s.train.x[16..<20].map { UInt8($0) } == Array("qrst".utf8))
        // Held-out: the last 6 bytes "yz0123", one window that never overlaps the training text.
        #expect(s.test.count == 1)
        #expect(s.test.x.map { UInt8($0) } == Array("yz01".utf8) && s.test.y.map { UInt8($0) } == Array("z012".utf8))
        let overlapping = try TextDataset.make(bytes: text, file: "t.txt", options: TextWindowOptions(length: 4, stride: 1, heldOut: 0.2))
        #expect(overlapping.train.count == 20)
        // Batches carry a block of labels per window, shuffled by the seed.
        let it = try BatchIterator(dataset: s.train, batchSize: 2, shuffle: true, seed: 7)
        var first0 = it.makeIterator()
        let nb = first0.next()
        let b = try #require(nb)
        #expect(b.size == 2 && b.y.count == 8)
        let first = b.indices[0]
        #expect(b.y[0..<4].map { $0 } == Array(s.train.y[(first * 4)..<(first * 4 + 4)]))
        var it2 = try BatchIterator(dataset: s.train, batchSize: 2, shuffle: true, seed: 7).makeIterator()
        let na = it2.next()
        let again = try #require(na)
        #expect(again == b)
        // A subset keeps each window's labels with it.
        let sub = s.train.subset([3])
        #expect(sub.count == 1 && sub.y == Array(s.train.y[12..<16]))
    }

    @Test func badText() {
        #expect(throws: DataError.self) { try TextDataset.make(bytes: [0x61, 0xC3, 0x28], file: "t", options: .init(length: 1)) }
        #expect(TextDataset.firstInvalidUTF8(Array("añb€c😀".utf8)) == nil)
        #expect(TextDataset.firstInvalidUTF8([0x61, 0xED, 0xA0, 0x80]) == 1)     // a surrogate
        #expect(TextDataset.firstInvalidUTF8([0xC0, 0xAF]) == 0)                 // overlong
        #expect(TextDataset.firstInvalidUTF8([0x61, 0xE2, 0x82]) == 1)           // truncated
        #expect(throws: DataError.self) {
            try TextDataset.make(bytes: Array("abcdefgh".utf8), file: "t", options: .init(length: 8))
        }
        #expect(throws: DataError.self) {
            try TextDataset.make(bytes: Array("abcdefghijklmnop".utf8), file: "t", options: .init(length: 2, vocabularySize: 100))
        }
    }
}
