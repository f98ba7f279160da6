import Foundation
import TributaryPostgres
import TributaryTestSupport

/// A seeded random workload over `accounts` and `ledger`: every kind of change the pipeline must
/// carry. The seed is printed so a failure can be replayed.
struct RandomWorkload {
    /// The tables the workload writes.
    static let tables = ["public.accounts", "public.ledger"]

    static let schema = """
        CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), doc text, tags text[]);
        ALTER TABLE accounts ALTER COLUMN doc SET STORAGE EXTERNAL;
        CREATE TABLE ledger (a int, b int, note text, PRIMARY KEY (a, b));
        INSERT INTO accounts SELECT i, 'owner ' || i, i, CASE WHEN i % 5 = 0 THEN repeat(md5(i::text), 100) END, ARRAY['t' || i]
        FROM generate_series(1, 200) i;
        INSERT INTO ledger SELECT i, 1, 'seed' FROM generate_series(1, 100) i;
        """

    var generator: SeededGenerator
    var nextID = 1000
    /// Values large enough to be stored out of line, so updates leave them out as unchanged TOAST.
    let largeValues: Bool

    init(seed: UInt64, largeValues: Bool = true) {
        print("RandomWorkload seed \(seed)")
        generator = SeededGenerator(seed: seed)
        self.largeValues = largeValues
    }

    /// The large value expression, or a small one when large values are off.
    func large(_ seed: String, _ times: Int) -> String {
        largeValues ? "repeat(md5(\(seed)), \(times))" : "md5(\(seed))"
    }

    mutating func step(_ one: PostgresConnection, _ two: PostgresConnection, addColumnAt: Int?, step index: Int) async throws {
        func pick() -> Int { Int.random(in: 1...nextID, using: &generator) }
        if index == addColumnAt {
            try await one.execute("ALTER TABLE accounts ADD COLUMN region text DEFAULT 'eu'")
            return
        }
        switch Int.random(in: 0..<100, using: &generator) {
        case 0..<25:
            nextID += 1
            let big = Bool.random(using: &generator)
            try await one.query("INSERT INTO accounts (id, owner, balance, doc) VALUES ($1::int, $2, $3, \(big ? large("$1::text", 100) : "NULL"))",
                                [String(nextID), "owner \(nextID)", String(nextID % 1000)])
        case 25..<45:
            // Leaves doc untouched: unchanged TOAST.
            try await one.query("UPDATE accounts SET balance = balance + 1, tags = array_append(tags, 'x') WHERE id = $1", [String(pick())])
        case 45..<52:
            try await one.query("UPDATE accounts SET doc = \(large("random()::text", 90)) WHERE id = $1", [String(pick())])
        case 52..<60:
            try await one.query("DELETE FROM accounts WHERE id = $1", [String(pick())])
        case 60..<66:
            nextID += 1
            try await one.query("UPDATE accounts SET id = $2 WHERE id = $1", [String(pick()), String(nextID)])
        case 66..<68:
            try await one.execute("TRUNCATE ledger")
        case 68..<72:
            try await one.execute("BEGIN; INSERT INTO accounts (id, owner) VALUES (-1, 'rolled back'); DELETE FROM ledger; ROLLBACK")
        case 72..<75:
            let base = Int.random(in: 1...1_000_000, using: &generator) * 10
            try await one.query("INSERT INTO ledger SELECT $1::int + i, 2, 'bulk' FROM generate_series(1, 2000) i ON CONFLICT DO NOTHING",
                                [String(base)])
        case 75..<80:
            // Insert then update in one transaction, the TOASTed value written once.
            nextID += 1
            try await one.execute("""
                BEGIN; INSERT INTO accounts (id, owner, doc) VALUES (\(nextID), 'fresh', \(large("'\(nextID)'", 100)));
                UPDATE accounts SET owner = 'fresh and updated' WHERE id = \(nextID); COMMIT
                """)
        default:
            // Two sessions interleaved: the second commits first.
            let a = Int.random(in: 1...1_000_000, using: &generator), b = a + 1
            try await one.execute("BEGIN; INSERT INTO ledger VALUES (\(a), 3, 'first open') ON CONFLICT DO NOTHING")
            try await two.execute("BEGIN; INSERT INTO ledger VALUES (\(b), 3, 'first commit') ON CONFLICT DO NOTHING; COMMIT")
            try await one.execute("COMMIT")
        }
    }
}
