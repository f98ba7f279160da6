/// One of N groups of a source's tables, for a bulk load spread over N processes
/// (`snapshot --group K/N`): each process copies its group as a table snapshot. The groups are
/// dealt from the configured order alone, never from sizes read at run time, so processes started
/// apart, on other machines, or again after a failure all deal the same groups: every table is in
/// exactly one, whatever the sources do meanwhile.
public struct BulkGroup: Sendable, Hashable, CustomStringConvertible {
    /// 1-based, as operators count (and as `snapshot --group 2/3` reads).
    public let index: Int
    public let count: Int

    public init(index: Int, count: Int) throws(BulkGroupError) {
        guard count >= 1, (1...count).contains(index) else { throw BulkGroupError("group \(index)/\(count) does not exist: K/N needs 1 ≤ K ≤ N") }
        self.index = index
        self.count = count
    }

    /// `K/N`, as the command line spells it.
    public init(parsing text: String) throws(BulkGroupError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let index = Int(parts[0]), let count = Int(parts[1]) else {
            throw BulkGroupError("--group \(text): write K/N, e.g. 2/3 for the second of three groups")
        }
        try self.init(index: index, count: count)
    }

    public var description: String { "\(index)/\(count)" }

    /// The tables of this group, in their configured order: every `count`-th from the group's own
    /// offset, so the groups differ by at most one table and a source's big tables, often
    /// configured side by side, fall into different groups.
    public func members<Table>(of tables: [Table]) -> [Table] {
        tables.enumerated().filter { $0.offset % count == index - 1 }.map(\.element)
    }
}

public struct BulkGroupError: Error, CustomStringConvertible, Equatable {
    public let description: String
    init(_ description: String) { self.description = description }
}
