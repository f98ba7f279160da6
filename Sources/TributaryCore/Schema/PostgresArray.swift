/// Text literals of PostgreSQL arrays, for passing lists as one query parameter.
public enum PostgresArray {
    /// `{"a","b \"c\""}`: every element quoted, so commas, braces and spaces are safe.
    public static func literal(_ elements: [String]) -> String {
        "{" + elements.map { "\"" + $0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\"" }
            .joined(separator: ",") + "}"
    }
}
