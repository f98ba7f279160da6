/// Which source column each column of a pgoutput Relation message is: its number in the source
/// catalog (`attnum`), which a rename keeps. The message names its columns (in `attnum` order,
/// dropped and generated ones left out) but not their numbers, and describes the table as it was
/// at the message's position in the stream, while the catalog the replicator can read is the
/// table as it is now. Pure: the caller reads the catalog.
///
/// In order of trust:
/// 1. The shape the DDL event trigger announced for the table at its last DDL, in the stream
///    before this message: exact (numbers by name, at that position).
/// 2. The message names what the previous message of this session named, and the catalog still
///    gives each name the same number: nothing moved.
/// 3. The catalog as it is now: a name the table still has is that column; a name it no longer
///    has is the column that had it before (renamed or dropped since); failing that, the one
///    column that fits its place. The result must fit: numbers rising in message order, and every
///    earlier column the catalog still has present (a column that exists now existed then).
///    A name whose column was dropped and which now belongs to a column added later (dropped and
///    added again under one name) cannot be told from the catalog: ambiguous.
public enum ColumnIdentity {
    /// One column of the table as the catalog has it now.
    public struct CatalogColumn: Sendable, Hashable {
        public var attnum: Int
        public var name: String
        public var dropped: Bool

        public init(attnum: Int, name: String, dropped: Bool = false) {
            self.attnum = attnum
            self.name = name
            self.dropped = dropped
        }
    }

    /// A column's number and name (what the previous message and the trigger's shape say).
    public struct Numbered: Sendable, Hashable {
        public var attnum: Int
        public var name: String

        public init(attnum: Int, name: String) {
            self.attnum = attnum
            self.name = name
        }
    }

    public enum Outcome: Sendable, Equatable {
        /// The number of each message column, in message order; `announced` when the trigger's
        /// shape gave them (exact whatever happened since).
        case identified([Int], announced: Bool = false)
        /// The catalog cannot say for sure: why, for the operator.
        case ambiguous(String)
    }

    /// - Parameters:
    ///   - names: the message's columns, in its order.
    ///   - previous: the columns of this relation's previous message in this session (nil for its
    ///     first: then only the catalog speaks).
    ///   - announced: the live columns the DDL event trigger announced at the table's last DDL.
    ///   - catalog: every column the catalog has now, dropped ones included, generated and
    ///     excluded ones left out.
    public static func identify(_ names: [String], previous: [Numbered]?, announced: [Numbered]?, catalog: [CatalogColumn],
                                unchangedSincePrevious: Bool = false) -> Outcome {
        if let announced {
            let byName = Dictionary(announced.map { ($0.name, $0.attnum) }, uniquingKeysWith: { first, _ in first })
            let numbers = names.compactMap { byName[$0] }
            if numbers.count == names.count, isRising(numbers) { return .identified(numbers, announced: true) }
        }
        let live = Dictionary(catalog.filter { !$0.dropped }.map { ($0.name, $0.attnum) }, uniquingKeysWith: { first, _ in first })
        let byNumber = Dictionary(catalog.map { ($0.attnum, $0) }, uniquingKeysWith: { first, _ in first })
        let before = Dictionary((previous ?? []).map { ($0.name, $0.attnum) }, uniquingKeysWith: { first, _ in first })
        // The trigger announced no DDL since the previous message: the same names are the same columns.
        if let previous, unchangedSincePrevious, previous.map(\.name) == names { return .identified(previous.map(\.attnum)) }
        // A name dropped and added again: the catalog gives it the new column, but whether the
        // message was written before the drop or after the add, nothing here can tell.
        for name in names {
            if let old = before[name], let now = live[name], old != now, byNumber[old]?.dropped == true {
                return .ambiguous("column \(name) was dropped and added again under the same name")
            }
        }
        // The same names in the same order as the previous message: the same columns (a rename
        // changes a name, a drop or an add the list; only a drop and an add under one name keeps
        // both, and that is ruled out above), whatever the catalog says of them now.
        if let previous, previous.map(\.name) == names { return .identified(previous.map(\.attnum)) }
        let byCatalog = assign(names, first: live, then: before, catalog: catalog, byNumber: byNumber)
        let byPrevious = assign(names, first: before, then: live, catalog: catalog, byNumber: byNumber)
        let fitting = [byCatalog, byPrevious].compactMap { $0 }.filter { numbers in
            guard isRising(numbers) else { return false }
            // Every earlier column the catalog still has existed at the message too.
            return (previous ?? []).allSatisfy { byNumber[$0.attnum]?.dropped != false || numbers.contains($0.attnum) }
        }
        guard let first = fitting.first else {
            if byCatalog == nil && byPrevious == nil {
                return .ambiguous("the columns \(names.joined(separator: ", ")) fit no columns of the catalog: the table changed again since")
            }
            return .ambiguous("the columns \(names.joined(separator: ", ")) are not in the catalog's order: the table changed again since")
        }
        guard fitting.allSatisfy({ $0 == first }) else {
            return .ambiguous("the columns \(names.joined(separator: ", ")) fit the catalog in two ways: the table changed again since")
        }
        return .identified(first)
    }

    /// Numbers by name from `first`, then `then`, then by place: between its neighbours' numbers,
    /// the one column there that no other name of the message claims. Nil when a name has none.
    private static func assign(_ names: [String], first: [String: Int], then: [String: Int], catalog: [CatalogColumn],
                               byNumber: [Int: CatalogColumn]) -> [Int]? {
        var numbers: [Int?] = names.map { first[$0] }
        for (index, name) in names.enumerated() where numbers[index] == nil {
            if let number = then[name], !numbers.contains(number),
               byNumber[number].map({ $0.dropped || $0.name == name || !names.contains($0.name) }) == true {
                numbers[index] = number
            }
        }
        for index in names.indices where numbers[index] == nil {
            let low = numbers[..<index].compactMap { $0 }.last ?? 0
            let high = numbers[(index + 1)...].compactMap { $0 }.first ?? Int.max
            let taken = Set(numbers.compactMap { $0 })
            let candidates = catalog.filter { column in
                column.attnum > low && column.attnum < high && !taken.contains(column.attnum)
                    && (column.dropped || !names.contains(column.name))
            }
            guard candidates.count == 1 else { return nil }
            numbers[index] = candidates[0].attnum
        }
        return numbers.map { $0! }
    }

    private static func isRising(_ numbers: [Int]) -> Bool {
        zip(numbers, numbers.dropFirst()).allSatisfy { $0 < $1 }
    }
}
