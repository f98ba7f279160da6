/// Decides which snapshot part a load worker takes next, when a table's key is due, and which
/// parts load frozen.
///
/// Two workers COPYing into the same table wait on each other for its extension lock, and a key
/// can only be built once every part of its table is in. So a worker stays with its table while
/// it has parts; a free worker takes the table nobody loads with the most bytes left; and a key
/// is built as soon as its table is in, while the other workers go on loading. The key builds
/// then overlap the loads instead of all waiting for the end.
///
/// A worker that starts on a table nothing was loaded into opens a *frozen run*: one transaction
/// that empties its tables and COPYs their parts with `FREEZE`, so rows are written frozen and
/// all-visible. That spares the target the hint-bit pass when the key is built, and the vacuum
/// that would later rewrite every page. The run holds its tables alone; while its own tables have
/// nothing to load, it takes in further untouched tables rather than wait. It commits (and its
/// tables' keys become due) when
/// - its tables are fully loaded;
/// - it has loaded `frozenRunBytes`, which bounds what a kill can undo;
/// - another worker has nothing to do while the run has a backlog of two fully copied tables or more;
/// - or it would wait while tables loaded before have parts pending.
/// From then on the parts of its unfinished tables load one transaction each, by whoever is free.
public struct PartLoadSchedule<Part> {
    public enum Job {
        /// Load `part` of `table`; `frozen`: within the worker's frozen run, which the first such
        /// job opens and which holds `table` from then on.
        case load(table: Int, part: Part, frozen: Bool)
        /// Commit the worker's frozen run.
        case commitRun
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
        /// Nothing of it has been loaded: a frozen run may empty it and begin afresh.
        var fresh = true
        /// The worker whose frozen run holds the table.
        var heldBy: Int?

        var hasPending: Bool { head < pending.count }
        var isLoaded: Bool { complete && !hasPending && loading == 0 }
    }

    struct Run {
        var tables: [Int]
        var bytes: Int
        /// A free worker waits for this run's backlog: it ends after the part in hand.
        var releaseRequested = false
    }

    private var tables: [Table]
    private var keysDue: [Int] = []
    /// Worker → its open frozen run.
    private var runs: [Int: Run] = [:]
    /// Worker → the table of its last part, which it keeps to while that has parts.
    private var lastTable: [Int: Int] = [:]
    /// Bytes after which a frozen run commits; 0: no frozen runs.
    public let frozenRunBytes: Int

    public init(tables: Int, frozenRunBytes: Int = 0) {
        self.tables = Array(repeating: Table(), count: tables)
        self.frozenRunBytes = frozenRunBytes
    }

    /// A part to load; `bytes` weighs the choice between tables and counts towards a run's limit.
    public mutating func add(table: Int, part: Part, bytes: Int) {
        tables[table].pending.append(part)
        tables[table].pendingSizes.append(bytes)
        tables[table].pendingBytes += bytes
    }

    /// Some of `table` is loaded already (a resumed load): it is never emptied for a frozen run.
    public mutating func partlyLoaded(table: Int) {
        tables[table].fresh = false
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

    /// The next job for `worker`, or nil when it has nothing to do now (more may come: ask again
    /// after any change).
    public mutating func next(worker: Int) -> Job? {
        if runs[worker] != nil { return nextInRun(worker: worker) }
        if !keysDue.isEmpty { return .buildKey(table: keysDue.removeFirst()) }
        let free = tables.indices.filter { tables[$0].hasPending && tables[$0].heldBy == nil }
        let choice: Int?
        if let previous = lastTable[worker], free.contains(previous) {
            choice = previous
        } else {
            // The table fewest workers load, then the one with most bytes left.
            choice = free.min { (tables[$0].loading, -tables[$0].pendingBytes) < (tables[$1].loading, -tables[$1].pendingBytes) }
        }
        guard let table = choice else {
            requestRelease()
            return nil
        }
        if frozenRunBytes > 0 && isFresh(table) {
            runs[worker] = Run(tables: [], bytes: 0)
            return load(table, inRunOf: worker)
        }
        tables[table].fresh = false
        return .load(table: table, part: take(table), frozen: false)
    }

    /// `worker` finished loading a part of `table`. Returns true when the table's key is now due:
    /// that worker builds it (it is not handed to anyone else). A frozen run's keys come due
    /// when it commits.
    public mutating func loaded(worker: Int, table: Int) -> Bool {
        tables[table].loading -= 1
        lastTable[worker] = table
        guard isKeyDue(table) else { return false }
        tables[table].keyClaimed = true
        return true
    }

    /// Whether any job is left or may still come.
    public var isDone: Bool {
        keysDue.isEmpty && runs.isEmpty && tables.allSatisfy(\.isLoaded)
    }

    private mutating func nextInRun(worker: Int) -> Job? {
        let run = runs[worker]!
        if run.releaseRequested || run.bytes >= frozenRunBytes { return commitRun(of: worker) }
        let own = run.tables.filter { tables[$0].hasPending }
        if let table = own.first(where: { $0 == lastTable[worker] }) ?? own.max(by: { tables[$0].pendingBytes < tables[$1].pendingBytes }) {
            return load(table, inRunOf: worker)
        }
        // Rather than wait for its own tables' next parts, the run takes in an untouched table.
        if let table = tables.indices.filter({ isFresh($0) && tables[$0].hasPending })
            .max(by: { tables[$0].pendingBytes < tables[$1].pendingBytes }) {
            return load(table, inRunOf: worker)
        }
        if run.tables.allSatisfy({ tables[$0].isLoaded }) { return commitRun(of: worker) }
        // Loaded tables have parts waiting: help with those instead of waiting for the run's.
        if tables.indices.contains(where: { tables[$0].heldBy == nil && tables[$0].hasPending }) { return commitRun(of: worker) }
        return nil
    }

    private mutating func load(_ table: Int, inRunOf worker: Int) -> Job {
        if tables[table].heldBy == nil {
            tables[table].heldBy = worker
            tables[table].fresh = false
            runs[worker]!.tables.append(table)
        }
        runs[worker]!.bytes += tables[table].pendingSizes[tables[table].head]
        return .load(table: table, part: take(table), frozen: true)
    }

    private mutating func commitRun(of worker: Int) -> Job {
        for table in runs.removeValue(forKey: worker)!.tables {
            tables[table].heldBy = nil
            claimKeyIfDue(table)
        }
        return .commitRun
    }

    private mutating func take(_ table: Int) -> Part {
        let part = tables[table].pending[tables[table].head]
        tables[table].pendingBytes -= tables[table].pendingSizes[tables[table].head]
        tables[table].head += 1
        tables[table].loading += 1
        return part
    }

    private func isFresh(_ table: Int) -> Bool {
        tables[table].fresh && tables[table].heldBy == nil && tables[table].loading == 0
    }

    /// A worker with nothing to do asks the run with the largest backlog to end after the part it
    /// is loading, when that backlog spans two tables or more: each worker then takes a table of
    /// its own. Only the backlog of fully copied tables counts: it is all that is left of them;
    /// while a table is still being copied its parts trickle in, and the free worker may soon have
    /// a table of its own. A backlog of one table stays in its run, frozen: two workers sharing a
    /// table wait on each other for its extension lock, and its key build would then pay the
    /// hint-bit pass over every row loaded unfrozen (at pgbench scale 200 that sharing made
    /// `snapshot --apply` about 6% slower than leaving the table to its run).
    private mutating func requestRelease() {
        let backlog = runs.filter { _, run in run.tables.contains { tables[$0].loading > 0 } }
            .filter { _, run in run.tables.filter { tables[$0].complete && tables[$0].hasPending }.count >= 2 }
            .mapValues { run in run.tables.filter { tables[$0].complete }.reduce(0) { $0 + tables[$1].pendingBytes } }
            .filter { $0.value > 0 }
        guard let worker = backlog.max(by: { $0.value < $1.value })?.key else { return }
        runs[worker]!.releaseRequested = true
    }

    private func isKeyDue(_ table: Int) -> Bool {
        tables[table].isLoaded && !tables[table].keyClaimed && tables[table].heldBy == nil
    }

    private mutating func claimKeyIfDue(_ table: Int) {
        guard isKeyDue(table) else { return }
        tables[table].keyClaimed = true
        keysDue.append(table)
    }
}

extension PartLoadSchedule.Job: Sendable where Part: Sendable {}
