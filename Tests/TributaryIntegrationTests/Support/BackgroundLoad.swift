import Foundation
import Synchronization
import TributaryPostgres

/// A write load on the demo's sources while a test does something else: small transactions as
/// fast as two connections per source commit them, until stopped. It never touches the customers
/// below 1000 (a test may alter those by hand in STG), and keeps every foreign key of the demo's
/// schemas.
final class BackgroundLoad: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let committed = Atomic<Int>(0)
    private let tasks = Mutex<[Task<Void, any Error>]>([])

    static let qvpStatements = [
        "UPDATE customers SET email = 'load' || (random() * 1e6)::int || '@example.com' WHERE id = 1000 + (random() * 900)::int",
        "UPDATE policies SET premium = premium + 1 WHERE id = (SELECT id FROM policies WHERE customer_id >= 1000 ORDER BY random() LIMIT 1)",
        """
        INSERT INTO claims (policy_id, reported_at, amount, description)
        SELECT id, now(), (random() * 5000)::numeric(12,2), 'load' FROM policies WHERE customer_id >= 1000 ORDER BY random() LIMIT 1
        """,
        "DELETE FROM claims WHERE id = (SELECT id FROM claims WHERE description = 'load' ORDER BY random() LIMIT 1)",
    ]
    static let svpStatements = [
        "UPDATE svp.contracts SET monthly_fee = monthly_fee + 1 WHERE contract_id = (SELECT contract_id FROM svp.contracts ORDER BY random() LIMIT 1)",
        """
        INSERT INTO svp.incidents (incident_id, contract_id, occurred, cost_estimate, report)
        SELECT 900000000 + (random() * 99999999)::bigint, contract_id, now(), (random() * 900)::numeric(10,2), 'load'
        FROM svp.contracts ORDER BY random() LIMIT 1 ON CONFLICT DO NOTHING
        """,
    ]

    /// Starts the load on `fixture`'s qvp and svp.
    static func start(_ fixture: PipelineFixture) async throws -> BackgroundLoad {
        let load = BackgroundLoad()
        for (source, statements) in [("qvp", qvpStatements), ("svp", svpStatements)] {
            for writer in 0..<2 {
                let connection = try await fixture.connectSource(source)
                let task = Task {
                    var index = writer
                    while !load.stopped.load(ordering: .relaxed) {
                        try await connection.execute(statements[index % statements.count])
                        load.committed.add(1, ordering: .relaxed)
                        index += 1
                    }
                    await connection.close()
                }
                load.tasks.withLock { $0.append(task) }
            }
        }
        return load
    }

    /// Transactions committed so far.
    var transactions: Int { committed.load(ordering: .relaxed) }

    /// Stops the load; returns the transactions it committed.
    @discardableResult
    func stop() async throws -> Int {
        stopped.store(true, ordering: .relaxed)
        for task in tasks.withLock({ $0 }) { try await task.value }
        return transactions
    }
}
