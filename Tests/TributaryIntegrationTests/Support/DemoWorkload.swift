import Foundation
import TributaryPostgres
import TributaryTestSupport

/// The demo's QVP and SVP (deploy/demo) as a test fixture, with the demo's BL models, and a seeded
/// random workload over both: every kind of change a BL model must follow (inserts, updates,
/// deletes with their children, key changes, rows moving between parents, truncates, unchanged
/// TOAST). The seed is printed; rows are picked by the server's random(), seeded from it too.
enum DemoSources {
    static let qvpTables = ["public.customers", "public.vehicles", "public.policies", "public.policy_coverages", "public.claims", "public.documents"]
    static let svpTables = ["svp.clients", "svp.assets", "svp.contracts", "svp.incidents", "svp.attachments", "svp.service_visits"]

    /// A fixture with both demo sources loaded (scale 1), snapshotted, and the demo models in its bl/.
    static func fixture(_ label: String, batchYAML: String = "batch:\n  max_age: 200ms\n  heartbeat: 300ms\n",
                        sourceCluster: PrivateCluster? = nil, configure: (inout PipelineFixture) -> Void = { _ in }) async throws -> PipelineFixture {
        var fixture = try await PipelineFixture.make(label, sources: [("qvp", qvpTables), ("svp", svpTables)], sourceCluster: sourceCluster)
        configure(&fixture)
        fixture.snapshotYAML = "  jobs: 2\n" + batchYAML
        for source in ["qvp", "svp"] {
            try await psql(fixture.source(source).conninfo, file: "deploy/demo/\(source)-schema.sql")
            try await psql(fixture.source(source).conninfo, file: "deploy/demo/\(source)-data.sql", variables: ["scale": "1"])
        }
        try fixture.writeConfiguration()
        try copyModels(to: fixture.configurationDirectory + "/bl")
        for source in ["qvp", "svp"] { _ = try await fixture.snapshot(source) }
        return fixture
    }

    static func copyModels(to directory: String) throws {
        try? FileManager.default.removeItem(atPath: directory)
        try FileManager.default.copyItem(atPath: Paths.repository + "/slots/bl", toPath: directory)
    }

    static func psql(_ conninfo: String, file: String, variables: [String: String] = [:]) async throws {
        let arguments = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-o", "/dev/null", "-d", conninfo, "-f", Paths.repository + "/" + file]
            + variables.flatMap { ["-v", "\($0.key)=\($0.value)"] }
        let outcome = try await TestProcess.run("/usr/lib/postgresql/15/bin/psql", arguments)
        guard outcome.status == 0 else { throw TestFailure("psql \(file): \(outcome.standardError)") }
    }
}

struct DemoWorkload {
    var generator: SeededGenerator
    let seed: UInt64
    var next = 0

    init(seed: UInt64) {
        print("DemoWorkload seed \(seed)")
        self.seed = seed
        generator = SeededGenerator(seed: seed)
    }

    /// Seeds the server's random() on these connections, so the rows picked follow the seed too.
    func prepare(qvp: PostgresConnection, svp: PostgresConnection) async throws {
        let fraction = String(Double(seed % 1_000_000) / 1_000_000)
        try await qvp.query("SELECT setseed($1::float8)", [fraction])
        try await svp.query("SELECT setseed($1::float8)", [fraction])
    }

    mutating func step(qvp: PostgresConnection, svp: PostgresConnection) async throws {
        next += 1
        let n = next
        if Bool.random(using: &generator) {
            try await qvp.execute(Self.qvpStatements(Int.random(in: 0..<100, using: &generator), n))
        } else {
            try await svp.execute(Self.svpStatements(Int.random(in: 0..<100, using: &generator), n))
        }
    }

    static let pickCustomer = "(SELECT id FROM customers ORDER BY random() LIMIT 1)"
    static let pickPolicy = "(SELECT id FROM policies ORDER BY random() LIMIT 1)"

    static func qvpStatements(_ roll: Int, _ n: Int) -> String {
        switch roll {
        case 0..<8:
            return "INSERT INTO customers (first_name, last_name, email) VALUES ('W', 'Customer \(n)', 'w\(n)@example.com')"
        case 8..<14:
            return "UPDATE customers SET email = 'changed\(n)@example.com', phone = NULL WHERE id = \(pickCustomer)"
        case 14..<17:
            // A customer with nothing pointing at it goes; one's key changes.
            return """
                DELETE FROM customers WHERE id = (SELECT c.id FROM customers c WHERE NOT EXISTS (SELECT 1 FROM vehicles v WHERE v.customer_id = c.id)
                  AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.customer_id = c.id) ORDER BY random() LIMIT 1);
                UPDATE customers SET id = id + 1000000 WHERE id = (SELECT c.id FROM customers c WHERE c.id < 1000000
                  AND NOT EXISTS (SELECT 1 FROM vehicles v WHERE v.customer_id = c.id)
                  AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.customer_id = c.id) ORDER BY random() LIMIT 1)
                """
        case 17..<22:
            return """
                INSERT INTO vehicles (vin, customer_id, make, model, model_year) SELECT upper(substr(md5('w\(n)'), 1, 17)), \(pickCustomer), 'VW', 'Golf', 2020;
                INSERT INTO policies (policy_no, customer_id, vin, status, premium, valid_during)
                  SELECT 'W-\(n)', v.customer_id, v.vin, 'quoted', 300, tstzrange(now(), NULL) FROM vehicles v WHERE v.vin = upper(substr(md5('w\(n)'), 1, 17));
                INSERT INTO policy_coverages SELECT p.id, 'LIAB', 50000, NULL FROM policies p WHERE p.policy_no = 'W-\(n)'
                """
        case 22..<27:
            // An owner changes: the asset, and the contracts on it, follow.
            return "UPDATE vehicles SET customer_id = \(pickCustomer), mileage_km = \(n) WHERE vin = (SELECT vin FROM vehicles ORDER BY random() LIMIT 1)"
        case 27..<35:
            return "UPDATE policies SET status = 'lapsed', premium = premium + 1 WHERE id = \(pickPolicy)"
        case 35..<38:
            return "UPDATE policies SET customer_id = \(pickCustomer) WHERE id = \(pickPolicy)"
        case 38..<41:
            // A policy goes with everything hanging off it.
            return """
                CREATE TEMP TABLE IF NOT EXISTS doomed (id bigint); TRUNCATE doomed; INSERT INTO doomed SELECT \(pickPolicy);
                DELETE FROM policy_coverages WHERE policy_id IN (SELECT id FROM doomed);
                DELETE FROM claims WHERE policy_id IN (SELECT id FROM doomed);
                DELETE FROM documents WHERE policy_id IN (SELECT id FROM doomed);
                DELETE FROM policies WHERE id IN (SELECT id FROM doomed)
                """
        case 41..<50:
            return "INSERT INTO policy_coverages SELECT \(pickPolicy), 'X\(n)', \(n * 10), 100 ON CONFLICT DO NOTHING"
        case 50..<56:
            return "UPDATE policy_coverages SET limit_amount = limit_amount + 1 WHERE (policy_id, coverage_code) = (SELECT policy_id, coverage_code FROM policy_coverages ORDER BY random() LIMIT 1)"
        case 56..<60:
            // A coverage moves to another policy: both contracts change.
            return """
                UPDATE policy_coverages SET policy_id = \(pickPolicy), coverage_code = 'M\(n)'
                WHERE (policy_id, coverage_code) = (SELECT policy_id, coverage_code FROM policy_coverages ORDER BY random() LIMIT 1)
                """
        case 60..<64:
            return "DELETE FROM policy_coverages WHERE (policy_id, coverage_code) = (SELECT policy_id, coverage_code FROM policy_coverages ORDER BY random() LIMIT 1)"
        case 64..<72:
            let large = n % 3 == 0 ? "(SELECT string_agg(md5('\(n)' || j), ' ') FROM generate_series(1, 400) j)" : "'claim \(n)'"
            return "INSERT INTO claims (policy_id, reported_at, amount, description) VALUES (\(pickPolicy), now(), \(n), \(large))"
        case 72..<80:
            // Leaves the (maybe TOASTed) description as it is.
            return "UPDATE claims SET amount = amount + 1, adjuster_notes = 'n\(n)' WHERE id = (SELECT id FROM claims ORDER BY random() LIMIT 1)"
        case 80..<84:
            return "DELETE FROM claims WHERE id = (SELECT id FROM claims ORDER BY random() LIMIT 1)"
        case 84..<90:
            return "INSERT INTO documents (id, policy_id, file_name, mime_type, object_key, uploaded_at) VALUES (md5('wd\(n)')::uuid, \(pickPolicy), 'd\(n).pdf', 'application/pdf', 'qvp-docs/w/\(n).pdf', now())"
        case 90..<94:
            return "DELETE FROM documents WHERE id = (SELECT id FROM documents ORDER BY random() LIMIT 1)"
        case 94..<96:
            return "TRUNCATE policy_coverages"
        default:
            return "BEGIN; UPDATE policies SET status = 'cancelled' WHERE id = \(pickPolicy); ROLLBACK"
        }
    }

    static let pickContract = "(SELECT contract_id FROM svp.contracts ORDER BY random() LIMIT 1)"
    static let pickClient = "(SELECT client_no FROM svp.clients ORDER BY random() LIMIT 1)"
    static let pickAsset = "(SELECT asset_id FROM svp.assets ORDER BY random() LIMIT 1)"

    static func svpStatements(_ roll: Int, _ n: Int) -> String {
        switch roll {
        case 0..<8:
            return "INSERT INTO svp.clients VALUES ('W\(n)', 'Client \(n)', NULL, NULL, NULL, now(), 'A', NULL)"
        case 8..<14:
            return "UPDATE svp.clients SET full_name = 'Renamed \(n)', email_address = '' WHERE client_no = \(pickClient)"
        case 14..<17:
            return """
                UPDATE svp.clients SET client_no = 'K\(n)' WHERE client_no = (SELECT c.client_no FROM svp.clients c
                  WHERE NOT EXISTS (SELECT 1 FROM svp.assets a WHERE a.client_no = c.client_no)
                  AND NOT EXISTS (SELECT 1 FROM svp.contracts k WHERE k.client_no = c.client_no) ORDER BY random() LIMIT 1)
                """
        case 17..<22:
            return "INSERT INTO svp.assets (client_no, vin, label, build_year) VALUES (\(pickClient), 'V\(n)', 'Van \(n)', 2019)"
        case 22..<27:
            return "UPDATE svp.assets SET client_no = \(pickClient), odometer = \(n) WHERE asset_id = \(pickAsset)"
        case 27..<32:
            return "INSERT INTO svp.contracts VALUES (md5('wc\(n)')::uuid, \(pickClient), \(pickAsset), 'DRAFT', 19.9, current_date, NULL, 'terms', NULL)"
        case 32..<40:
            return "UPDATE svp.contracts SET state = 'RUNNING', monthly_fee = monthly_fee + 1 WHERE contract_id = \(pickContract)"
        case 40..<43:
            return """
                CREATE TEMP TABLE IF NOT EXISTS doomed (id uuid); TRUNCATE doomed; INSERT INTO doomed SELECT \(pickContract);
                DELETE FROM svp.incidents WHERE contract_id IN (SELECT id FROM doomed);
                DELETE FROM svp.attachments WHERE contract_id IN (SELECT id FROM doomed);
                DELETE FROM svp.contracts WHERE contract_id IN (SELECT id FROM doomed)
                """
        case 43..<52:
            return "INSERT INTO svp.incidents VALUES (\(5_000_000 + n), \(pickContract), now(), \(n), 1, 'incident \(n)', NULL)"
        case 52..<58:
            return "UPDATE svp.incidents SET severity = 3, contract_id = \(pickContract) WHERE incident_id = (SELECT incident_id FROM svp.incidents ORDER BY random() LIMIT 1)"
        case 58..<62:
            return "DELETE FROM svp.incidents WHERE incident_id = (SELECT incident_id FROM svp.incidents ORDER BY random() LIMIT 1)"
        case 62..<70:
            return "INSERT INTO svp.attachments VALUES (\(pickContract), \(1000 + n), 'a\(n).pdf', 'svp-docs/w/\(n).pdf', \(n), NULL) ON CONFLICT DO NOTHING"
        case 70..<75:
            // A key change: the document moves to another key.
            return "UPDATE svp.attachments SET seq = seq + 100000 WHERE (contract_id, seq) = (SELECT contract_id, seq FROM svp.attachments WHERE seq < 100000 ORDER BY random() LIMIT 1)"
        case 75..<79:
            return "DELETE FROM svp.attachments WHERE (contract_id, seq) = (SELECT contract_id, seq FROM svp.attachments ORDER BY random() LIMIT 1)"
        case 79..<86:
            return "INSERT INTO svp.service_visits (asset_id, visited_on, duration, parts) VALUES (\(pickAsset), current_date, '2 hours', ARRAY['oil'])"
        case 86..<92:
            return "UPDATE svp.service_visits SET asset_id = \(pickAsset), notes = 'n\(n)' WHERE visit_id = (SELECT visit_id FROM svp.service_visits ORDER BY random() LIMIT 1)"
        case 92..<97:
            return "DELETE FROM svp.service_visits WHERE visit_id = (SELECT visit_id FROM svp.service_visits ORDER BY random() LIMIT 1)"
        default:
            return "TRUNCATE svp.service_visits"
        }
    }
}
