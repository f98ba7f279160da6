/// Quoting for generated SQL. Every identifier and literal that reaches a statement passes here.
public enum SQL {
    /// A double-quoted identifier with embedded quotes doubled.
    public static func identifier(_ name: String) -> String { quoted(name, by: UInt8(ascii: "\"")) }

    /// A standard-conforming string literal (`'it''s'`). NUL cannot occur in PostgreSQL text.
    public static func literal(_ value: String) -> String { quoted(value, by: UInt8(ascii: "'")) }

    /// `text` between `quote`s, each `quote` in it doubled. Byte by byte rather than with
    /// Foundation's `replacingOccurrences`: the applier quotes every column of every file of a
    /// batch, and at 600 tables that search was 2.5% of the machine's CPU (bench-breadth's profile).
    static func quoted(_ text: String, by quote: UInt8) -> String {
        let bytes = text.utf8
        let quotes = bytes.reduce(0) { $0 + ($1 == quote ? 1 : 0) }
        return String(unsafeUninitializedCapacity: bytes.count + quotes + 2) { buffer in
            var end = 0
            buffer[end] = quote
            end += 1
            for byte in bytes {
                buffer[end] = byte
                end += 1
                if byte == quote {
                    buffer[end] = quote
                    end += 1
                }
            }
            buffer[end] = quote
            return end + 1
        }
    }

    /// Quotes only when PostgreSQL would need it: for messages and configuration.
    public static func displayIdentifier(_ name: String) -> String {
        let plain = name.first.map { $0 == "_" || ($0.isASCII && $0.isLowercase) } ?? false
            && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }
        return plain ? name : identifier(name)
    }

    /// `name` cut to at most `bytes` UTF-8 bytes on a character boundary (PostgreSQL's limit is 63).
    public static func truncated(_ name: String, bytes: Int = 63) -> String {
        var result = ""
        var count = 0
        for scalar in name.unicodeScalars {
            count += String(scalar).utf8.count
            if count > bytes { break }
            result.unicodeScalars.append(scalar)
        }
        return result
    }

    /// A comma-separated list of quoted identifiers.
    public static func identifierList(_ names: [String]) -> String {
        names.map(identifier).joined(separator: ", ")
    }
}
