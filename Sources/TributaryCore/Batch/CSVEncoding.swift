import CCSVTranscoder
#if canImport(Glibc)
import Glibc
#endif

/// CSV exactly as PostgreSQL's `COPY … (FORMAT csv)` reads it back: NULL is an unquoted empty
/// field, an empty string is `""`, and a field is quoted when it holds a comma, quote, CR or LF,
/// or is `\.` (which alone on a line would end the data).
public enum CSVEncoding {
    public static func appendField(_ value: UnsafeRawBufferPointer?, to line: inout [UInt8]) {
        guard let value else { return }
        guard value.isEmpty || needsQuotes(value) else { return line.append(contentsOf: value) }
        // Quoted: copied a run at a time up to each quote, which is doubled.
        line.append(UInt8(ascii: "\""))
        if let base = value.baseAddress {
            var start = 0
            while let found = memchr(base + start, Int32(UInt8(ascii: "\"")), value.count - start) {
                let quote = base.distance(to: UnsafeRawPointer(found))
                line.append(contentsOf: UnsafeRawBufferPointer(rebasing: value[start...quote]))
                line.append(UInt8(ascii: "\""))
                start = quote + 1
            }
            line.append(contentsOf: UnsafeRawBufferPointer(rebasing: value[start...]))
        }
        line.append(UInt8(ascii: "\""))
    }

    public static func appendField(_ text: String?, to line: inout [UInt8]) {
        guard var text else { return }
        text.withUTF8 { appendField(UnsafeRawBufferPointer($0), to: &line) }
    }

    /// One field, handed to `sink` in pieces of about `chunk` bytes, for values too large to build
    /// a line around: an unquoted value goes out as slices of itself, a quoted one through `scratch`.
    /// `scratch` must be empty (what it held sunk already), and is left empty.
    public static func writeField(_ value: UnsafeRawBufferPointer, chunk: Int, scratch: inout [UInt8],
                                  sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard value.isEmpty || needsQuotes(value) else {
            var start = 0
            while start < value.count {
                let end = min(value.count, start + chunk)
                try sink(UnsafeRawBufferPointer(rebasing: value[start..<end]))
                start = end
            }
            return
        }
        scratch.append(UInt8(ascii: "\""))
        for byte in value {
            if byte == UInt8(ascii: "\"") { scratch.append(byte) }
            scratch.append(byte)
            if scratch.count >= chunk {
                try scratch.withUnsafeBytes(sink)
                scratch.removeAll(keepingCapacity: true)
            }
        }
        scratch.append(UInt8(ascii: "\""))
        try scratch.withUnsafeBytes(sink)
        scratch.removeAll(keepingCapacity: true)
    }

    private static func needsQuotes(_ value: UnsafeRawBufferPointer) -> Bool {
        if value.count == 2 && value[0] == UInt8(ascii: "\\") && value[1] == UInt8(ascii: ".") { return true }
        guard let base = value.baseAddress else { return false }
        return tributary_csv_needs_quotes(base.assumingMemoryBound(to: UInt8.self), value.count) != 0
    }
}
