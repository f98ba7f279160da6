import Foundation
import Synchronization
import TributaryPostgres

/// A write load on some tables of a source while a test changes their schema: per table, one
/// connection runs its statements in turn, a few milliseconds apart, until stopped. A test swaps
/// a table's statements when a DDL renames what they name; a statement that fails meanwhile (it
/// met the DDL's lock or the old name) is counted and the load goes on.
final class TableWriter: Sendable {
    private let statements: Mutex<[String: [String]]>
    private let stopped = Atomic<Bool>(false)
    private let committed = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let tasks = Mutex<[Task<Void, Never>]>([])

    init(_ statements: [String: [String]]) {
        self.statements = Mutex(statements)
    }

    /// Starts one writer per table on `conninfo`.
    static func start(_ statements: [String: [String]], conninfo: String) async throws -> TableWriter {
        let writer = TableWriter(statements)
        for table in statements.keys.sorted() {
            let connection = try await PostgresConnection.connect(conninfo, name: "load \(table)")
            let task = Task {
                var index = 0
                while !writer.stopped.load(ordering: .relaxed) {
                    let list = writer.statements.withLock { $0[table] ?? [] }
                    guard !list.isEmpty else { break }
                    do {
                        try await connection.execute(list[index % list.count])
                        writer.committed.add(1, ordering: .relaxed)
                    } catch {
                        writer.failed.add(1, ordering: .relaxed)
                    }
                    index += 1
                    try? await Task.sleep(for: .milliseconds(5))
                }
                await connection.close()
            }
            writer.tasks.withLock { $0.append(task) }
        }
        return writer
    }

    /// From now on `table`'s writer runs these (after a DDL that renamed what the old ones name).
    func set(_ table: String, _ list: [String]) { statements.withLock { $0[table] = list } }

    var transactions: Int { committed.load(ordering: .relaxed) }

    /// Stops every writer; returns the transactions committed.
    @discardableResult
    func stop() async -> Int {
        stopped.store(true, ordering: .relaxed)
        for task in tasks.withLock({ $0 }) { await task.value }
        return transactions
    }
}
