/// A schema-qualified relation name, kept unquoted; `sql` quotes it for use in statements.
public struct QualifiedName: Sendable, Hashable, Codable, CustomStringConvertible, Comparable {
    public let schema: String
    public let name: String

    public init(schema: String, name: String) {
        self.schema = schema
        self.name = name
    }

    /// Parses the configuration form: `schema.table`, with double quotes around parts that contain
    /// dots, capitals or other characters (`"Sales"."Order Lines"`). An unqualified name means `public`.
    public init?(parsing text: String) {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var wasQuoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if quoted {
                if character == "\"" {
                    let next = text.index(after: index)
                    if next < text.endIndex, text[next] == "\"" {
                        current.append("\"")
                        index = next
                    } else {
                        quoted = false
                    }
                } else {
                    current.append(character)
                }
            } else if character == "\"" {
                guard current.isEmpty else { return nil }
                quoted = true
                wasQuoted = true
            } else if character == "." {
                guard !current.isEmpty else { return nil }
                parts.append(current)
                current = ""
                wasQuoted = false
            } else {
                guard !wasQuoted else { return nil }
                // Unquoted identifiers fold to lower case, as PostgreSQL folds them.
                current.append(contentsOf: character.lowercased())
            }
            index = text.index(after: index)
        }
        guard !quoted, !current.isEmpty else { return nil }
        parts.append(current)
        switch parts.count {
        case 1: self.init(schema: "public", name: parts[0])
        case 2: self.init(schema: parts[0], name: parts[1])
        default: return nil
        }
    }

    /// The quoted SQL form, safe to splice into a statement.
    public var sql: String { SQL.identifier(schema) + "." + SQL.identifier(name) }

    /// The form an operator reads, quoting only where the configuration form would need it.
    public var description: String { SQL.displayIdentifier(schema) + "." + SQL.displayIdentifier(name) }

    public static func < (lhs: QualifiedName, rhs: QualifiedName) -> Bool {
        (lhs.schema, lhs.name) < (rhs.schema, rhs.name)
    }
}
