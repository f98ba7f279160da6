/// Quoting for generated SQL. Every identifier and literal that reaches a statement passes here.
public enum SQL {
    /// A double-quoted identifier with embedded quotes doubled.
    public static func identifier(_ name: String) -> String {
        "\"" + name.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// A standard-conforming string literal (`'it''s'`). NUL cannot occur in PostgreSQL text.
    public static func literal(_ value: String) -> String {
        "'" + value.replacingOccurrences(of: "'", with: "''") + "'"
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
