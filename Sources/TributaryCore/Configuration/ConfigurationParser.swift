import Foundation
import Yams

/// Turns the texts of the configuration files into a `Configuration`. Reading the files happens at the
/// edge (the caller passes names and contents); this only parses and validates.
public enum ConfigurationParser {
    /// The target file's name inside the configuration directory; every other `*.yaml` is a source.
    public static let targetFileName = "tributary.yaml"

    public struct File: Sendable {
        public var name: String
        public var text: String
        public init(name: String, text: String) {
            self.name = name
            self.text = text
        }
    }

    /// - Parameters:
    ///   - directory: the configuration directory, against which relative paths resolve.
    ///   - models: the BL models' YAML files (`bl/<name>.yaml`), each with the text of its `.sql` (nil if missing).
    public static func parse(files: [File], directory: String, environment: [String: String],
                             models: [(yaml: File, sql: String?)] = []) throws -> Configuration {
        guard let targetFile = files.first(where: { ($0.name as NSString).lastPathComponent == targetFileName }) else {
            throw TributaryError.configuration(
                file: directory, problem: "no \(targetFileName) here: it names the target database and the staging store")
        }
        let target = try parseTarget(targetFile, directory: directory, environment: environment)
        let sources = try files.filter { $0.name != targetFile.name }
            .sorted { $0.name < $1.name }
            .map { try parseSource($0, directory: directory, environment: environment, sync: target.sync) }
        guard !sources.isEmpty else {
            throw TributaryError.configuration(file: directory, problem: "no source file (one YAML per source, e.g. qvp.yaml)")
        }
        var seen: [String: String] = [:]
        for source in sources {
            if let other = seen[source.name] {
                throw TributaryError.configuration(file: source.file, keyPath: "source", problem: "source \"\(source.name)\" is also defined in \(other)")
            }
            seen[source.name] = source.file
        }
        let parsedModels = try TransformModelParser.validate(try models.map { try TransformModelParser.parse(yaml: $0.yaml, sql: $0.sql) })
        return Configuration(target: target, sources: sources, models: parsedModels)
    }

    static func root(_ file: File, environment: [String: String]) throws -> YAMLReader {
        let node: Node?
        do {
            node = try Yams.compose(yaml: file.text)
        } catch let error as YamlError {
            throw TributaryError.configuration(file: file.name, line: yamlLine(error), problem: "not valid YAML: \(yamlProblem(error))")
        }
        guard let node else { throw TributaryError.configuration(file: file.name, problem: "the file is empty") }
        return try YAMLReader(file: file.name, path: "", node: node, environment: environment)
    }

    static func parseTarget(_ file: File, directory: String, environment: [String: String]) throws -> TargetConfiguration {
        let root = try root(file, environment: environment)
        try root.requireOnly(["target", "staging", "work_dir", "work_max", "batch", "snapshot", "oci", "bl", "sync"])
        guard let targetSection = try root.child("target") else {
            throw TributaryError.configuration(file: file.name, keyPath: "target", problem: "required key is missing")
        }
        try targetSection.requireOnly(["connection"])
        let connection = try targetSection.requiredString("connection")
        // `staging: <url>`, or `staging: {url: <url>, signing_key: <secret>, retention: 7d, gc_interval: 10m}`.
        var signingKey: String?
        var retentionSettings = RetentionSettings()
        let staging: StagingLocation
        if let node = root.node("staging"), node.mapping != nil, let section = try root.child("staging") {
            try section.requireOnly(["url", "signing_key", "retention", "gc_interval"])
            if let retention = try section.duration("retention", allowZero: true) { retentionSettings.retention = retention }
            if let interval = try section.duration("gc_interval") { retentionSettings.interval = interval }
            staging = try parseStaging(try section.requiredString("url"), root: section, directory: directory, key: "url")
            signingKey = try section.string("signing_key")
            if let key = signingKey, key.utf8.count < 32 {
                throw section.error("signing_key", section.node("signing_key")!,
                                    "is \(key.utf8.count) bytes: use at least 32 (openssl rand -hex 32), from the environment (${TRIBUTARY_SIGNING_KEY})")
            }
        } else {
            staging = try parseStaging(try root.requiredString("staging"), root: root, directory: directory)
        }
        let workDirectory = resolve(try root.string("work_dir") ?? ".tributary/work", against: directory)

        var target = TargetConfiguration(connection: connection, staging: staging, workDirectory: workDirectory,
                                         batch: try parseBatch(root.child("batch")), snapshot: try parseSnapshot(root.child("snapshot")),
                                         oci: try parseOCI(root.child("oci"), directory: directory), file: file.name)
        target.signingKey = signingKey
        target.retention = retentionSettings
        target.workMaximum = try root.bytes("work_max")
        if let section = try root.child("sync") {
            target.sync = try ObjectSyncParser.settings(section, directory: directory)
        }
        target.transform = try parseTransform(root.child("bl"))
        return target
    }

    static func parseBatch(_ section: YAMLReader?) throws -> BatchLimits {
        var batch = BatchLimits()
        guard let section else { return batch }
        try section.requireOnly(["max_rows", "max_bytes", "max_age", "memory_max", "heartbeat"])
        batch.rowsMax = try section.integer("max_rows", in: 1...100_000_000) ?? batch.rowsMax
        batch.bytesMax = try section.bytes("max_bytes") ?? batch.bytesMax
        batch.ageMax = try section.duration("max_age") ?? batch.ageMax
        batch.memoryBytesMax = try section.bytes("memory_max") ?? batch.memoryBytesMax
        batch.heartbeatInterval = try section.duration("heartbeat") ?? batch.heartbeatInterval
        return batch
    }

    static func parseSnapshot(_ section: YAMLReader?) throws -> SnapshotSettings {
        var snapshot = SnapshotSettings()
        guard let section else { return snapshot }
        try section.requireOnly(["jobs", "part_size", "range_size", "compression_level", "maintenance_work_mem", "freeze_max", "apply_cache"])
        snapshot.jobs = try section.integer("jobs", in: 1...64) ?? snapshot.jobs
        snapshot.partBytesMax = try section.bytes("part_size") ?? snapshot.partBytesMax
        snapshot.rangeBytes = try section.bytes("range_size") ?? snapshot.rangeBytes
        snapshot.compressionLevel = try section.integer("compression_level", in: GzipEncoder.levels) ?? snapshot.compressionLevel
        snapshot.maintenanceWorkMem = try section.bytes("maintenance_work_mem") ?? snapshot.maintenanceWorkMem
        snapshot.freezeBytesMax = try section.bytes("freeze_max", allowZero: true) ?? snapshot.freezeBytesMax
        snapshot.applyCacheBytes = try section.bytes("apply_cache", allowZero: true) ?? snapshot.applyCacheBytes
        if snapshot.maintenanceWorkMem < 1 << 20 {
            throw section.error("maintenance_work_mem", section.node("maintenance_work_mem")!, "must be at least 1MiB")
        }
        return snapshot
    }

    static func parseOCI(_ section: YAMLReader?, directory: String) throws -> OCISettings {
        var oci = OCISettings()
        guard let section else { return oci }
        try section.requireOnly(["config_file", "profile", "region", "endpoint", "multipart_threshold", "part_size", "connections", "attempts"])
        oci.configFile = try section.string("config_file").map { resolve($0, against: directory) }
        oci.profile = try section.string("profile")
        oci.region = try section.string("region")
        oci.endpoint = try section.string("endpoint")
        if let endpoint = oci.endpoint, !(endpoint.hasPrefix("https://") || endpoint.hasPrefix("http://")) {
            throw section.error("endpoint", section.node("endpoint")!, "expected http(s)://host[:port], found \"\(endpoint)\"")
        }
        oci.multipartThreshold = try section.bytes("multipart_threshold") ?? oci.multipartThreshold
        oci.partSize = try section.bytes("part_size") ?? oci.partSize
        oci.connections = try section.integer("connections", in: 1...64) ?? oci.connections
        oci.attempts = try section.integer("attempts", in: 1...100) ?? oci.attempts
        return oci
    }

    static func parseTransform(_ section: YAMLReader?) throws -> TransformSettings {
        var transform = TransformSettings()
        guard let section else { return transform }
        try section.requireOnly(["min_interval", "retry", "catch_up_deferral", "jobs"])
        transform.jobs = try section.integer("jobs", in: 1...32) ?? transform.jobs
        transform.minInterval = try section.duration("min_interval") ?? transform.minInterval
        transform.retryInterval = try section.duration("retry") ?? transform.retryInterval
        transform.catchUpDeferral = try section.duration("catch_up_deferral") ?? transform.catchUpDeferral
        return transform
    }

    static func parseStaging(_ text: String, root: YAMLReader, directory: String, key: String = "staging") throws -> StagingLocation {
        if text.hasPrefix("oci://") {
            let parts = text.dropFirst("oci://".count).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw root.error(key, root.node(key)!, "expected oci://<namespace>/<bucket>/<prefix>, found \"\(text)\"")
            }
            let prefix = parts.count == 3 ? String(parts[2]).trimmingCharacters(in: CharacterSet(charactersIn: "/")) : ""
            return .objectStorage(namespace: String(parts[0]), bucket: String(parts[1]), prefix: prefix)
        }
        if text.hasPrefix("file://") {
            return .directory(resolve(String(text.dropFirst("file://".count)), against: directory))
        }
        if text.contains("://") {
            throw root.error(key, root.node(key)!, "unsupported scheme in \"\(text)\": use file:///path, a path, or oci://namespace/bucket/prefix")
        }
        return .directory(resolve(text, against: directory))
    }

    static func parseSource(_ file: File, directory: String, environment: [String: String], sync: ObjectSyncSettings) throws -> SourceConfiguration {
        let root = try root(file, environment: environment)
        if root.node("buckets") != nil {
            throw root.error("buckets", root.node("buckets")!, "buckets: became objects: (a list of from:, to: … mappings): see the README")
        }
        try root.requireOnly(["source", "connection", "slot", "publication", "create_publication", "tables", "schema_changes", "checks", "objects",
                              "sequences", "sequence_margin"])
        let stem = ((file.name as NSString).lastPathComponent as NSString).deletingPathExtension
        let name = try root.string("source") ?? stem
        guard name.first.map({ $0.isASCII && $0.isLowercase }) == true,
              name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }), name.count <= 20 else {
            throw TributaryError.configuration(file: file.name, keyPath: "source",
                                     problem: "\"\(name)\" is not a usable source name: lower-case letters, digits and _, starting with a letter, at most 20")
        }
        let connection = try root.requiredString("connection")
        let slot = try root.string("slot") ?? "tributary_\(name)"
        try requireSlotName(slot, root: root)
        let publication = try root.string("publication") ?? "tributary_\(name)"
        let createPublication = try root.bool("create_publication") ?? true
        guard let tableReaders = try root.children("tables"), !tableReaders.isEmpty else {
            throw TributaryError.configuration(file: file.name, line: root.node("tables")?.mark?.line, keyPath: "tables",
                                     problem: "at least one table is required")
        }
        var tables: [TableConfiguration] = []
        for reader in tableReaders {
            let table = try parseTable(reader, source: name)
            if tables.contains(where: { $0.table == table.table }) {
                throw TributaryError.configuration(file: file.name, line: reader.line, keyPath: reader.path, problem: "table \(table.table) is listed twice")
            }
            if let clash = tables.first(where: { $0.stagingTable == table.stagingTable }) {
                throw TributaryError.configuration(file: file.name, line: reader.line, keyPath: reader.path,
                                         problem: "STG table \(table.stagingTable) is also used by \(clash.table): set stg_table")
            }
            tables.append(table)
        }
        var source = SourceConfiguration(name: name, connection: connection, slot: slot, publication: publication,
                                         createPublication: createPublication, tables: tables, file: file.name)
        if let text = try root.string("schema_changes") {
            guard let policy = SchemaChangePolicy(configured: text) else {
                throw root.error("schema_changes", root.node("schema_changes")!, "expected follow or stop, found \"\(text)\"")
            }
            source.schemaChanges = policy
        }
        for reader in try root.children("checks") ?? [] {
            try reader.requireOnly(["name", "source", "target"])
            source.checks.append(IndicatorCheck(name: try reader.requiredString("name"), sourceSQL: try reader.requiredString("source"),
                                                targetSQL: try reader.requiredString("target")))
        }
        source.objects = try ObjectSyncParser.mappings(root, source: name, directory: directory, settings: sync)
        for reader in try root.children("sequences") ?? [] {
            try reader.requireOnly(["name", "to"])
            let text = try reader.requiredString("name")
            guard let sequence = QualifiedName(parsing: text) else {
                throw reader.error("name", reader.node("name")!, "\"\(text)\" is not a sequence name: write schema.sequence")
            }
            var carryOver = SequenceCarryOver(sequence: sequence)
            if let target = try reader.string("to") {
                guard let name = QualifiedName(parsing: target) else {
                    throw reader.error("to", reader.node("to")!, "\"\(target)\" is not a sequence name: write schema.sequence")
                }
                carryOver.target = name
            }
            source.sequences.append(carryOver)
        }
        source.sequenceMargin = Int64(try root.integer("sequence_margin", in: 0...1_000_000_000_000) ?? 0)
        return source
    }

    static func parseTable(_ reader: YAMLReader, source: String) throws -> TableConfiguration {
        try reader.requireOnly(["name", "key", "stg_table", "exclude_columns"])
        let text = try reader.requiredString("name")
        guard let table = QualifiedName(parsing: text) else {
            throw reader.error("name", reader.node("name")!, "\"\(text)\" is not a table name: write schema.table, with \"double quotes\" around mixed-case parts")
        }
        let stagingTable = try reader.string("stg_table") ?? TableConfiguration.defaultStagingTable(source: source, table: table)
        guard stagingTable.utf8.count <= 63 else {
            throw reader.error("stg_table", reader.node("stg_table") ?? reader.node("name")!,
                               "STG table name \"\(stagingTable)\" is longer than PostgreSQL's 63 bytes: set a shorter stg_table")
        }
        let key = try reader.stringList("key")
        if let key, key.isEmpty { throw reader.error("key", reader.node("key")!, "an empty key: leave it out to use the primary key") }
        return TableConfiguration(table: table, key: key, stagingTable: stagingTable,
                                  excludedColumns: try reader.stringList("exclude_columns") ?? [])
    }

    static func requireSlotName(_ slot: String, root: YAMLReader) throws {
        // PostgreSQL's rule for replication slot names.
        guard !slot.isEmpty, slot.count <= 63,
              slot.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }) else {
            throw root.error("slot", root.node("slot") ?? root.node("connection")!,
                             "\"\(slot)\" is not a valid slot name: lower-case letters, digits and _ only, at most 63")
        }
    }

    public static func resolve(_ path: String, against directory: String) -> String {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return (expanded as NSString).standardizingPath }
        return ((directory as NSString).appendingPathComponent(expanded) as NSString).standardizingPath
    }

    static func yamlLine(_ error: YamlError) -> Int? {
        switch error {
        case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
        default: return nil
        }
    }

    static func yamlProblem(_ error: YamlError) -> String {
        switch error {
        case .scanner(let context, let problem, _, _), .parser(let context, let problem, _, _),
             .composer(let context, let problem, _, _):
            return [context?.text, problem].compactMap { $0 }.filter { !$0.isEmpty }.joined(separator: ", ")
        case .reader(let problem, _, _, _): return problem
        default: return "\(error)"
        }
    }
}
