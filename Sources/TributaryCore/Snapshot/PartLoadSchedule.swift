/// Decides which snapshot part a load worker takes next, and when a table's key is due.
///
/// Two workers COPYing into the same table wait on each other for its extension lock, and a key
/// can only be built once every part of its table is in. So a worker stays with its table while
/// it has parts; a free worker takes the table nobody loads with the most bytes left; and the
/// worker that loads a table's last part builds its key, while the others go on loading. The
/// key builds then overlap the loads instead of all waiting for the end.
public struct PartLoadSchedule<Part> {
    public enum Job {
        case load(table: Int, part: Part)
        case buildKey(table: Int)
    }

    struct Table {
        var pending: [Part] = []
        var head = 0
        var pendingBytes = 0
        var pendingSizes: [Int] = []
        var loading = 0
        /// Every part has been added.
        var complete = false
        var keyClaimed = false

        var hasPending: Bool { head < pending.count }
    }

    private var tables: [Table]
    private var keysDue: [Int] = []

    public init(tables: Int) {
        self.tables = Array(repeating: Table(), count: tables)
    }

    /// A part to load; `bytes` weighs the choice between tables.
    public mutating func add(table: Int, part: Part, bytes: Int) {
        tables[table].pending.append(part)
        tables[table].pendingSizes.append(bytes)
        tables[table].pendingBytes += bytes
    }

    /// No more parts of `table` will be added.
    public mutating func complete(table: Int) {
        tables[table].complete = true
        claimKeyIfDue(table)
    }

    /// `table` needs no load and no key (promoted already).
    public mutating func skip(table: Int) {
        tables[table].complete = true
        tables[table].keyClaimed = true
    }

    /// The next job for a worker whose last part was of table `previous`, or nil when nothing is
    /// ready now (more may come).
    public mutating func next(after previous: Int?) -> Job? {
        if !keysDue.isEmpty { return .buildKey(table: keysDue.removeFirst()) }
        let choice: Int?
        if let previous, tables[previous].hasPending {
            choice = previous
        } else {
            // The table fewest workers load, then the one with most bytes left.
            choice = tables.indices.filter { tables[$0].hasPending }
                .min { (tables[$0].loading, -tables[$0].pendingBytes) < (tables[$1].loading, -tables[$1].pendingBytes) }
        }
        guard let table = choice else { return nil }
        let part = tables[table].pending[tables[table].head]
        tables[table].pendingBytes -= tables[table].pendingSizes[tables[table].head]
        tables[table].head += 1
        tables[table].loading += 1
        return .load(table: table, part: part)
    }

    /// A worker finished loading a part of `table`. Returns true when the table's key is now due:
    /// that worker builds it (it is not handed to anyone else).
    public mutating func loaded(table: Int) -> Bool {
        tables[table].loading -= 1
        guard isKeyDue(table) else { return false }
        tables[table].keyClaimed = true
        return true
    }

    /// Whether any job is left or may still come.
    public var isDone: Bool {
        keysDue.isEmpty && tables.allSatisfy { $0.complete && !$0.hasPending && $0.loading == 0 }
    }

    private func isKeyDue(_ table: Int) -> Bool {
        let state = tables[table]
        return state.complete && !state.hasPending && state.loading == 0 && !state.keyClaimed
    }

    private mutating func claimKeyIfDue(_ table: Int) {
        guard isKeyDue(table) else { return }
        tables[table].keyClaimed = true
        keysDue.append(table)
    }
}

extension PartLoadSchedule.Job: Sendable where Part: Sendable {}
