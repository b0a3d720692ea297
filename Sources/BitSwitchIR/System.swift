#if canImport(Glibc)
import Glibc
#endif

/// Bytes the kernel says can be allocated without swapping (MemAvailable); physical memory where
/// /proc/meminfo is absent; nil when neither is known. Checked before any allocation sized by a user's file.
public func availableMemoryBytes() -> Int? {
    guard let f = fopen("/proc/meminfo", "r") else {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return nil }
        let (r, o) = pages.multipliedReportingOverflow(by: size)
        return o ? Int.max : r
    }
    defer { fclose(f) }
    var line = [CChar](repeating: 0, count: 256)
    while fgets(&line, Int32(line.count), f) != nil {
        let s = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard s.hasPrefix("MemAvailable:") else { continue }
        let fields = s.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" })
        guard fields.count >= 2, let kb = Int(fields[1]) else { return nil }
        return kb.multipliedReportingOverflow(by: 1024).overflow ? Int.max : kb * 1024
    }
    return nil
}
