import Foundation
import Logging
import TributaryCore
import TributaryPostgres
import TributaryServices
import TributaryStorage

/// One test's world: source database(s) on the source cluster, a target database, a staging
/// directory, a work directory and a configuration directory with the YAML files written out,
/// so the same setup drives both the library API and the `tributary` executable.
struct PipelineFixture {
    struct Source {
        var name: String
        var conninfo: String
        /// Slots are cluster-wide and tests share the cluster: each test gets its own slot name.
        var slot: String
        var tables: [String]
        var extraYAML: String = ""
    }

    let clusters: TestClusters
    let root: String
    let target: String
    var sources: [Source]
    var snapshotYAML = "  jobs: 2\n"
    /// The staging URL as tributary.yaml spells it, and any further target settings (an `oci:` section).
    var staging = "../staging"
    var extraTargetYAML = ""
    /// The target connection tributary.yaml names, when not the test's own (another role).
    var targetOverride: String?

    /// - Parameter sourceCluster: where the source databases go; the shared source cluster by default.
    static func make(_ label: String, sources: [(name: String, tables: [String])],
                     sourceCluster: PrivateCluster? = nil) async throws -> PipelineFixture {
        let clusters = try await TestClusters.shared()
        let root = clusters.directory + "/\(label)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root + "/slots", withIntermediateDirectories: true)
        var made: [Source] = []
        for source in sources {
            let conninfo = if let sourceCluster {
                try await sourceCluster.makeDatabase(source.name)
            } else {
                try await clusters.makeDatabase(source.name, onSource: true)
            }
            let database = conninfo.split(separator: " ").first { $0.hasPrefix("dbname=") }!.dropFirst("dbname=".count)
            made.append(Source(name: source.name, conninfo: conninfo, slot: "s_\(database)", tables: source.tables))
        }
        return PipelineFixture(clusters: clusters, root: root, target: try await clusters.makeDatabase("target", onSource: false), sources: made)
    }

    var configurationDirectory: String { root + "/slots" }
    var stagingDirectory: String { root + "/staging" }

    /// Writes slots/*.yaml for the current state of the fixture.
    func writeConfiguration() throws {
        let targetYAML = """
            target:
              connection: "\(targetOverride ?? target)"
            staging: \(staging)
            work_dir: ../work
            \(extraTargetYAML)
            snapshot:
            \(snapshotYAML)
            """
        try targetYAML.write(toFile: configurationDirectory + "/tributary.yaml", atomically: true, encoding: .utf8)
        for source in sources {
            var yaml = """
                source: \(source.name)
                connection: "\(source.conninfo)"
                slot: \(source.slot)
                publication: tributary_\(source.name)
                tables:

                """
            for table in source.tables { yaml += "  - name: '\(table)'\n" }
            yaml += source.extraYAML
            try yaml.write(toFile: configurationDirectory + "/\(source.name).yaml", atomically: true, encoding: .utf8)
        }
    }

    func configuration() throws -> Configuration {
        try writeConfiguration()
        return try ConfigurationLoader.load(directory: configurationDirectory, environment: [:])
    }

    /// The endpoints tributary would use for this fixture's configuration.
    func endpoints() throws -> Endpoints { Endpoints(try configuration(), command: "test") }

    /// The target's endpoint alone, for a fixture whose sources do not make a configuration.
    var targetEndpoint: TargetEndpoint {
        TargetEndpoint(TargetConfiguration(connection: target, staging: .directory(stagingDirectory), workDirectory: root + "/work", file: "test"),
                       command: "test")
    }

    func store() throws -> any StagingStore {
        try StagingStores.open(try configuration().target, logger: Self.logger)
    }

    func snapshot(_ source: String, restart: Bool = false,
                  onStart: @Sendable @escaping (TransferProgress) async -> Void = { _ in }) async throws -> SnapshotManifest {
        let configuration = try configuration()
        let sourceConfiguration = try configuration.sources(named: [source])[0]
        return try await Snapshotter(source: sourceConfiguration, endpoints: try endpoints(), settings: configuration.target.snapshot, store: try store(),
                                     workDirectory: configuration.target.workDirectory, logger: Self.logger)
            .run(options: .init(restart: restart), onStart: onStart).manifest
    }

    func load(_ source: String) async throws -> SnapshotLoader.Report? {
        try writeConfiguration()
        return try await SnapshotLoader(target: try endpoints().target, store: try store(), jobs: 2, sources: try configuration().sources, logger: Self.logger).load(source: source)
    }

    func verify(_ source: String) async throws -> [TableComparer.Comparison] {
        let configuration = try configuration()
        return try await TableComparer(endpoints: try endpoints()).compare(source: try configuration.sources(named: [source])[0])
    }

    /// Runs the tributary executable against this fixture's configuration.
    func tributary(_ arguments: [String], environment: [String: String] = [:]) async throws -> TestProcess.Outcome {
        try writeConfiguration()
        return try await TestProcess.run(Paths.tributary, arguments + ["--config", configurationDirectory], environment: environment)
    }

    func source(_ name: String) -> Source { sources.first { $0.name == name }! }

    func connectSource(_ name: String) async throws -> PostgresConnection {
        try await PostgresConnection.connect(source(name).conninfo, name: name)
    }

    func connectTarget() async throws -> PostgresConnection {
        try await PostgresConnection.connect(target, name: "target")
    }

    static let logger: Logger = {
        var logger = Logger(label: "test")
        logger.logLevel = .warning
        return logger
    }()
}
