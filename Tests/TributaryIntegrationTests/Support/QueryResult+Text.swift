import TributaryPostgres

/// The text form of results, as psql prints it: what the tests compare against. (The library
/// reads typed values; a test states the text it expects.)
extension QueryResult {
    /// The first row's first value.
    var scalar: String? { rows.first?.values.first ?? nil }

    func value(_ row: Int, _ column: String) -> String? {
        rows[row].values[columns.firstIndex(of: column)!]
    }
}

extension QueryRow {
    subscript(position: Int) -> String? { values[position] }
}
