/// How the preloader empties a reused load table before a batch's rows go in: TRUNCATE, or DELETE.
///
/// A TRUNCATE gives the table a new file (a file created and one unlinked, a pg_class row
/// updated, a cache invalidation) and lets COPY load the rows frozen. At 600 tables, where a batch
/// touches about 200 of them with a few rows each, that was nearly half of what the preloading
/// backend spent, for tables of a few rows. A DELETE of a few rows costs next to nothing, but its
/// dead rows stay (autovacuum is off on load tables, so it never holds a TRUNCATE up) and every
/// later merge reads past them. So: DELETE while the rows it would leave dead stay few, TRUNCATE
/// when they would not, for a large load (worth loading frozen), and for a table this process has
/// not loaded yet (what it holds is unknown). Only the cost depends on the choice: either way the
/// table holds exactly the batch's rows, which the merge's row count checks.
///
/// A table this process has not loaded yet is also created if it does not exist (`create`); one it
/// has loaded is known to exist, and is only emptied: `CREATE … IF NOT EXISTS` of a table that
/// exists still parses the whole definition and sends a notice, and at 600 tables, once per
/// load table per batch, it took a tenth of the target's statement time (bench-breadth).
public struct LoadTableReuse: Sendable {
    public enum Emptying: Sendable, Equatable {
        /// Created if it does not exist, then truncated.
        case create
        case truncate
        case delete

        /// Whether the table is empty in a new file afterwards (its rows can go in frozen).
        public var truncates: Bool { self != .delete }
    }

    /// Dead rows a load table may carry before it is truncated; also the smallest load that is
    /// truncated to go in frozen.
    public static let deadRowLimit = 1_000

    private struct Contents {
        var live: Int
        var dead: Int
    }
    private var tables: [String: Contents] = [:]

    public init() {}

    /// How to empty `table` before `rows` go in.
    public func emptying(_ table: String, incomingRows rows: Int) -> Emptying {
        guard let contents = tables[table] else { return .create }
        guard rows < Self.deadRowLimit, contents.dead + contents.live <= Self.deadRowLimit else { return .truncate }
        return .delete
    }

    /// Records a load that committed; one that rolled back left the table as it was before.
    public mutating func loaded(_ table: String, rows: Int, emptiedBy emptying: Emptying) {
        switch emptying {
        case .create, .truncate: tables[table] = Contents(live: rows, dead: 0)
        case .delete:
            let before = tables[table] ?? Contents(live: 0, dead: 0)
            tables[table] = Contents(live: rows, dead: before.dead + before.live)
        }
    }
}
