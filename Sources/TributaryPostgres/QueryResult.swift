/// Rows of a query in PostgreSQL's text form (NULL as nil).
public struct QueryResult: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows affected, for INSERT/UPDATE/DELETE/COPY.
    public var affectedRows: Int

    public init(columns: [String], rows: [[String?]], affectedRows: Int) {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
    }

    public var isEmpty: Bool { rows.isEmpty }

    /// The value in `row` under `column`; a misspelt column name is a programmer error.
    public func value(_ row: Int, _ column: String) -> String? {
        guard let index = columns.firstIndex(of: column) else { preconditionFailure("no column \(column) in result") }
        return rows[row][index]
    }

    /// The first row's first value: for `SELECT x`.
    public var scalar: String? { rows.first?.first ?? nil }
}
