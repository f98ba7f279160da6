import Testing
import TributaryCore

@Suite struct ConfigurationParserTests {
    let target = ConfigurationParser.File(name: "slots/tributary.yaml", text: """
        target:
          connection: "host=db password=${TARGET_PASSWORD}"
        staging: ../staging
        snapshot:
          jobs: 4
          part_size: 64MiB
        batch:
          max_age: 500ms
        """)

    func source(_ text: String) -> ConfigurationParser.File { .init(name: "slots/qvp.yaml", text: text) }

    func parse(_ files: [ConfigurationParser.File], environment: [String: String] = ["TARGET_PASSWORD": "secret"]) throws -> Configuration {
        try ConfigurationParser.parse(files: files, directory: "/etc/tributary/slots", environment: environment)
    }

    func error(_ files: [ConfigurationParser.File], environment: [String: String] = ["TARGET_PASSWORD": "secret"]) -> String {
        do {
            _ = try parse(files, environment: environment)
            return "no error"
        } catch {
            return "\(error)"
        }
    }

    @Test func readsAFullConfiguration() throws {
        let configuration = try parse([target, source("""
            connection: "host=qvp user=${QVP_USER:-tributary}"
            tables:
              - name: public.customers
              - name: '"Sales"."Order Lines"'
                key: [order_id, line]
                exclude_columns: scratch
              - name: billing.invoices
                stg_table: qvp_invoices
            """)])
        #expect(configuration.target.connection == "host=db password=secret")
        #expect(configuration.target.staging == .directory("/etc/tributary/staging"))
        #expect(configuration.target.snapshot.jobs == 4)
        #expect(configuration.target.snapshot.partBytesMax == 64 << 20)
        #expect(configuration.target.batch.ageMax == .milliseconds(500))
        let qvp = configuration.sources[0]
        #expect(qvp.name == "qvp" && qvp.slot == "tributary_qvp" && qvp.publication == "tributary_qvp" && qvp.createPublication)
        #expect(qvp.connection == "host=qvp user=tributary")
        #expect(qvp.tables.map(\.stagingTable) == ["qvp_customers", "qvp_sales_order_lines", "qvp_invoices"])
        #expect(qvp.tables[1].key == ["order_id", "line"])
        #expect(qvp.tables[1].excludedColumns == ["scratch"])
    }

    @Test func stagingURLs() throws {
        func staging(_ text: String) throws -> StagingLocation {
            let file = ConfigurationParser.File(name: "tributary.yaml", text: "target:\n  connection: x\nstaging: \(text)\n")
            return try parse([file, source("connection: y\ntables: [{name: a}]")]).target.staging
        }
        #expect(try staging("file:///var/lib/t") == .directory("/var/lib/t"))
        #expect(try staging("oci://ns/bucket/some/prefix/") == .objectStorage(namespace: "ns", bucket: "bucket", prefix: "some/prefix"))
        #expect(throws: TributaryError.self) { try staging("s3://bucket") }
    }

    @Test func retentionDefaultsAndOverrides() throws {
        func retention(_ staging: String) throws -> RetentionSettings {
            let file = ConfigurationParser.File(name: "tributary.yaml", text: "target:\n  connection: x\nstaging: \(staging)\n")
            return try parse([file, source("connection: y\ntables: [{name: a}]")]).target.retention
        }
        #expect(try retention("../staging").retention == .seconds(7 * 86_400))
        #expect(try retention("../staging").interval == .seconds(600))
        #expect(try retention("{url: ../staging, retention: 0, gc_interval: 30s}") == {
            var settings = RetentionSettings()
            settings.retention = .zero
            settings.interval = .seconds(30)
            return settings
        }())
        #expect(try retention("{url: ../staging, retention: 2d}").retention == .seconds(2 * 86_400))
        let bad = ConfigurationParser.File(name: "tributary.yaml", text: "target: {connection: x}\nstaging: {url: s, retention: a week}")
        #expect(error([bad, source("connection: y\ntables: [{name: a}]")]).contains("staging.retention"))
        let zeroInterval = ConfigurationParser.File(name: "tributary.yaml", text: "target: {connection: x}\nstaging: {url: s, gc_interval: 0}")
        #expect(error([zeroInterval, source("connection: y\ntables: [{name: a}]")]).contains("staging.gc_interval"))
    }

    @Test func schemaChangesFollowByDefaultStopOnAskAndTheOldNameStillReads() throws {
        let base = "source: qvp\nconnection: x\nslot: s\npublication: p\ntables:\n  - name: public.t\n"
        #expect(try parse([target, source(base)]).sources[0].schemaChanges == .follow)
        #expect(try parse([target, source(base + "schema_changes: stop\n")]).sources[0].schemaChanges == .stop)
        #expect(try parse([target, source(base + "schema_changes: add_columns\n")]).sources[0].schemaChanges == .follow)
        #expect(error([target, source(base + "schema_changes: ignore\n")]).contains("schema_changes: expected follow or stop, found \"ignore\""))
    }

    @Test func unknownKeyNamesFileLineAndSuggestion() {
        let message = error([target, source("connection: x\ntables:\n  - name: a\n    kee: [id]\n")])
        #expect(message == "slots/qvp.yaml:4: tables[0].kee: unknown key (did you mean \"key\"?); known keys: name, key, stg_table, exclude_columns")
    }

    @Test func missingEnvironmentVariableIsNamed() {
        let message = error([target, source("connection: x\ntables: [{name: a}]")], environment: [:])
        #expect(message == "slots/tributary.yaml:2: target.connection: environment variable TARGET_PASSWORD is not set (export it, or write ${TARGET_PASSWORD:-default})")
    }

    @Test func invalidYAMLIsLocated() {
        let message = error([target, source("connection: x\ntables: [a\n")])
        #expect(message.hasPrefix("slots/qvp.yaml:"))
        #expect(message.contains("not valid YAML"))
    }

    @Test func otherMistakes() throws {
        #expect(error([source("connection: x\ntables: [{name: a}]")]).contains("no tributary.yaml here"))
        #expect(error([target]).contains("no source file"))
        #expect(error([target, source("tables: [{name: a}]")]) == "slots/qvp.yaml:1: connection: required key is missing")
        #expect(error([target, source("connection: x\ntables: []")]).contains("at least one table is required"))
        #expect(error([target, source("connection: x\ntables: [{name: 'a.b.c'}]")]).contains("is not a table name"))
        #expect(error([target, source("connection: x\nslot: Bad-Slot\ntables: [{name: a}]")]).contains("not a valid slot name"))
        #expect(error([target, source("connection: x\ntables: [{name: a}, {name: public.a}]")]).contains("listed twice"))
        #expect(error([target, source("connection: x\ncreate_publication: maybe\ntables: [{name: a}]")]).contains("expected true or false"))
        let badJobs = ConfigurationParser.File(name: "tributary.yaml", text: "target: {connection: x}\nstaging: s\nsnapshot: {jobs: 0}")
        #expect(error([badJobs, source("connection: x\ntables: [{name: a}]")]).contains("expected a whole number from 1 to 64"))
        func snapshotError(_ yaml: String) -> String {
            error([.init(name: "tributary.yaml", text: "target: {connection: x}\nstaging: s\nsnapshot: {\(yaml)}"),
                   source("connection: x\ntables: [{name: a}]")])
        }
        // igzip has levels 0 to 3: a zlib level such as 6 is refused, not silently clamped.
        #expect(snapshotError("compression_level: 6").contains("expected a whole number from 0 to 3"))
        #expect(snapshotError("maintenance_work_mem: 64kB").contains("maintenance_work_mem: must be at least 1MiB"))
        #expect(try parse([.init(name: "tributary.yaml", text: "target: {connection: x}\nstaging: s\nsnapshot: {maintenance_work_mem: 1GiB, compression_level: 0}"),
                           source("connection: x\ntables: [{name: a}]")]).target.snapshot.maintenanceWorkMem == 1 << 30)
        func snapshotSettings(_ yaml: String) throws -> SnapshotSettings {
            try parse([.init(name: "tributary.yaml", text: "target: {connection: x}\nstaging: s\nsnapshot: {\(yaml)}"),
                       source("connection: x\ntables: [{name: a}]")]).target.snapshot
        }
        #expect(try snapshotSettings("freeze_max: 0").freezeBytesMax == 0, "0 turns frozen runs off")
        #expect(try snapshotSettings("freeze_max: 512MiB").freezeBytesMax == 512 << 20)
        #expect(snapshotError("freeze_max: lots").contains("freeze_max"))
    }

    @Test func environmentExpansion() throws {
        let environment = ["A": "1", "EMPTY": ""]
        #expect(try EnvironmentExpansion.expand("x${A}y", environment: environment) == "x1y")
        #expect(try EnvironmentExpansion.expand("${B:-dflt}", environment: environment) == "dflt")
        #expect(try EnvironmentExpansion.expand("${EMPTY:-dflt}", environment: environment) == "dflt")
        #expect(try EnvironmentExpansion.expand("$$HOME", environment: environment) == "$HOME")
        #expect(throws: EnvironmentExpansion.Failure.unset("B")) { try EnvironmentExpansion.expand("${B}", environment: environment) }
        #expect(throws: EnvironmentExpansion.Failure.self) { try EnvironmentExpansion.expand("$A", environment: environment) }
    }

    @Test func quantities() {
        #expect(Quantity.bytes("256MiB") == 256 << 20)
        #expect(Quantity.bytes("64 MB") == 64_000_000)
        #expect(Quantity.bytes("12 parsecs") == nil)
        #expect(Quantity.milliseconds("2m") == 120_000)
        #expect(Quantity.milliseconds("250ms") == 250)
    }
}
