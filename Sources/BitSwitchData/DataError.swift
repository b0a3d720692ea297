import Foundation

/// An error reading or checking a data file. The message always names the file so the CLI can print it as is.
public struct DataError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The file could not be opened, read or written.
        case io
        /// The bytes do not follow the format (bad magic, truncated, malformed header).
        case format
        /// A valid file in a variant this reader does not handle (Fortran order, big-endian, an unknown dtype).
        case unsupported
        /// The files parse, but do not form a usable dataset (count mismatch, labels out of range, shape mismatch).
        case inconsistent
    }

    public var kind: Kind
    public var file: String
    public var message: String

    public init(_ kind: Kind, file: String, _ message: String) {
        self.kind = kind
        self.file = file
        self.message = message
    }

    public var description: String { "\(file): \(message)" }
}

extension DataError: LocalizedError {
    public var errorDescription: String? { description }
}
