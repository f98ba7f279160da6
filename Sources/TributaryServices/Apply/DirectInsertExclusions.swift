import Synchronization

/// The STG tables of a source whose files of inserts and updates this process no longer tries to
/// COPY straight in (`DirectInsert`): one such COPY met a key STG held (a source that deletes and
/// inserts the same keys would have every later one rolled back too), or a BL model logs the
/// table's changes. Their files go through load tables, and the preloader loads them again
/// instead of leaving them to the merging connection. For the process's life: a model dropped
/// since only costs what this saves. (What passes, a shape STG follows from the next batch on, a
/// copy waited for, rules a file out without this.)
final class DirectInsertExclusions: Sendable {
    private let tables = Mutex<Set<String>>([])

    init() {}

    func contains(_ stagingTable: String) -> Bool { tables.withLock { $0.contains(stagingTable) } }

    func exclude(_ stagingTable: String) { _ = tables.withLock { $0.insert(stagingTable) } }
}
