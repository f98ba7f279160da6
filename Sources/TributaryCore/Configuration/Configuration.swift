/// Everything Tributary is configured with: the target side and each source slot.
public struct Configuration: Sendable {
    public var target: TargetConfiguration
    public var sources: [SourceConfiguration]
    /// The BL models (`bl/`), in running order: every model after the models it reads.
    public var models: [TransformModel]

    public init(target: TargetConfiguration, sources: [SourceConfiguration], models: [TransformModel] = []) {
        self.target = target
        self.sources = sources
        self.models = models
    }

    /// The models an operator named, or all of them; an unknown name lists the known ones.
    public func models(named names: [String]) throws -> [TransformModel] {
        guard !names.isEmpty else { return models }
        return try names.map { name in
            guard let model = models.first(where: { $0.name == name || $0.table.description == name }) else {
                throw TributaryError.configuration(
                    file: "--model", problem: "no model named \"\(name)\" (configured: \(models.map(\.name).joined(separator: ", ")))")
            }
            return model
        }
    }

    /// The source whose STG table this is, if any.
    public func source(ofStagingTable table: String) -> SourceConfiguration? {
        sources.first { $0.tables.contains { $0.stagingTable == table } }
    }

    /// The sources an operator named, or all of them; an unknown name is an error that lists the known ones.
    public func sources(named names: [String]) throws -> [SourceConfiguration] {
        guard !names.isEmpty else { return sources }
        return try names.map { name in
            guard let source = sources.first(where: { $0.name == name }) else {
                throw TributaryError.configuration(
                    file: "--source", problem: "no source named \"\(name)\" (configured: \(sources.map(\.name).joined(separator: ", ")))")
            }
            return source
        }
    }
}

/// One source database and its logical replication slot (`slots/<source>.yaml`).
public struct SourceConfiguration: Sendable {
    /// Short name used in object keys, STG table names and commands (`qvp`).
    public var name: String
    /// libpq connection string or URI, environment already expanded. Never log it: it may hold a password.
    public var connection: String
    public var slot: String
    public var publication: String
    /// Whether `snapshot` may create the publication when it does not exist.
    public var createPublication: Bool
    public var tables: [TableConfiguration]
    /// What the applier does when a batch's schema differs from the STG table.
    public var schemaChanges: SchemaChangePolicy = .follow
    /// Key-indicator queries `verify` runs on both sides.
    public var checks: [IndicatorCheck] = []
    /// The source's object files and where they go (the object sync).
    public var objects: [ObjectMapping] = []
    /// Sequences carried over to the target at cutover beside those owned by configured tables'
    /// columns (`sequences:`).
    public var sequences: [SequenceCarryOver] = []
    /// Added to each carried-over sequence's value at cutover (`sequence_margin`), for writes the
    /// source took after its end.
    public var sequenceMargin: Int64 = 0
    /// The file it came from, for messages.
    public var file: String

    public init(name: String, connection: String, slot: String, publication: String, createPublication: Bool,
                tables: [TableConfiguration], file: String) {
        self.name = name
        self.connection = connection
        self.slot = slot
        self.publication = publication
        self.createPublication = createPublication
        self.tables = tables
        self.file = file
    }
}

/// A source sequence set on the target at cutover, so the application's inserts there continue
/// where the source's stopped.
public struct SequenceCarryOver: Sendable, Hashable {
    public var sequence: QualifiedName
    /// On the target; nil: `stg.<source>_<sequence>`.
    public var target: QualifiedName?

    public init(sequence: QualifiedName, target: QualifiedName? = nil) {
        self.sequence = sequence
        self.target = target
    }

    /// Where it goes on the target for `source`.
    public func target(source: String) -> QualifiedName {
        target ?? QualifiedName(schema: StagingColumns.schema, name: TableConfiguration.defaultStagingTable(source: source, table: sequence))
    }
}

/// A business figure that must agree: `sourceSQL` on the source and `targetSQL` on the target must
/// return the same rows (compared as text, in the order they return them).
public struct IndicatorCheck: Sendable, Hashable {
    public var name: String
    public var sourceSQL: String
    public var targetSQL: String

    public init(name: String, sourceSQL: String, targetSQL: String) {
        self.name = name
        self.sourceSQL = sourceSQL
        self.targetSQL = targetSQL
    }
}

/// How the applier follows schema changes on a source (`schema_changes:`).
public enum SchemaChangePolicy: String, Sendable {
    /// What can be followed exactly is (a column or table renamed, a column added, a type widened,
    /// NOT NULL set or dropped; a dropped column is kept in STG); the rest stops the source with
    /// the fix (`StagingSchemaPlanner`).
    case follow
    /// Every change STG would need stops the source, with the statements that follow it by hand.
    case stop

    /// `add_columns`, the name `follow` had before it followed renames and widened types too.
    public init?(configured text: String) {
        self.init(rawValue: text == "add_columns" ? "follow" : text)
    }
}

/// One replicated table.
public struct TableConfiguration: Sendable, Hashable {
    public var table: QualifiedName
    /// Key columns when the table's primary key or replica identity index is not the key to use.
    public var key: [String]?
    /// Name of the table in schema `stg`; defaults to `<source>_<table>`, or `<source>_<schema>_<table>`
    /// when the schema is neither `public` nor named like the source, folded to lower case with every
    /// other character made `_`, so BL SQL never needs to quote it.
    public var stagingTable: String
    public var excludedColumns: [String]

    public init(table: QualifiedName, key: [String]? = nil, stagingTable: String, excludedColumns: [String] = []) {
        self.table = table
        self.key = key
        self.stagingTable = stagingTable
        self.excludedColumns = excludedColumns
    }

    public static func defaultStagingTable(source: String, table: QualifiedName) -> String {
        let name = table.schema == "public" || table.schema == source
            ? "\(source)_\(table.name)" : "\(source)_\(table.schema)_\(table.name)"
        return String(name.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "_" })
    }
}

/// Where the OCI layer lives.
public enum StagingLocation: Sendable, Hashable, CustomStringConvertible {
    /// A directory on the local filesystem (tests, the local demo, a mounted volume).
    case directory(String)
    /// OCI Object Storage: `oci://<namespace>/<bucket>/<prefix>`.
    case objectStorage(namespace: String, bucket: String, prefix: String)

    public var description: String {
        switch self {
        case .directory(let path): return "file://\(path)"
        case .objectStorage(let namespace, let bucket, let prefix): return "oci://\(namespace)/\(bucket)/\(prefix)"
        }
    }
}

/// How to reach OCI Object Storage for an `oci://` staging store (section `oci` of tributary.yaml).
public struct OCISettings: Sendable, Hashable {
    /// Default: `OCI_CLI_CONFIG_FILE`, `OCI_CONFIG_FILE`, then `~/.oci/config`.
    public var configFile: String?
    /// Default: `OCI_CLI_PROFILE`, then `DEFAULT`.
    public var profile: String?
    /// Overrides the profile's region.
    public var region: String?
    /// Overrides the regional endpoint, e.g. `http://127.0.0.1:9000` for the emulator.
    public var endpoint: String?
    public var multipartThreshold: Int = 128 << 20
    public var partSize: Int = 64 << 20
    /// Concurrent requests (connections), which is also how many parts upload at once.
    public var connections: Int = 4
    /// Attempts per request, the first included.
    public var attempts: Int = 8

    public init() {}
}

/// Micro-batch limits: a batch closes on a transaction boundary once it reaches any of them.
public struct BatchLimits: Sendable, Hashable {
    public var rowsMax: Int = 100_000
    public var bytesMax: Int = 64 << 20
    public var ageMax: Duration = .milliseconds(500)
    /// Above this, the source streams a transaction before it commits (its logical_decoding_work_mem)
    /// and the replicator spills it to the work directory.
    public var memoryBytesMax: Int = 64 << 20
    /// An idle source gets a heartbeat this often, so its slot advances and lag stays measurable.
    public var heartbeatInterval: Duration = .seconds(10)

    public init() {}
}

/// BL transform settings (section `bl` of tributary.yaml).
public struct TransformSettings: Sendable, Hashable {
    /// A model runs at most once per this interval, however many batches change its inputs.
    public var minInterval: Duration = .seconds(1)
    /// A model that failed is tried again after this long (with its SQL read again).
    public var retryInterval: Duration = .seconds(30)
    /// Models run at once (each on a connection of its own) when they do not read each other.
    public var jobs = 2
    /// While the applier works through a backlog, a model's work waits up to this long (STG first).
    public var catchUpDeferral: Duration = .seconds(60)

    public init() {}
}

/// Bulk snapshot settings.
public struct SnapshotSettings: Sendable, Hashable {
    /// Parallel COPY workers per source.
    public var jobs: Int = 2
    /// Uncompressed bytes after which a part file is closed and the next one begun.
    public var partBytesMax: Int = 32 << 20
    /// Heap bytes per range when a large table is split for parallel copy. A range is also what a
    /// resumed snapshot keeps of a table it had not finished (`SnapshotResumer`), so ranges are
    /// small: bench-snapshot showed no difference between 64 MiB and 1 GiB beyond the order in
    /// which they ran (2026-12-06, two runs of three rounds: whichever ran second was faster).
    public var rangeBytes: Int = 64 << 20
    /// igzip level 0–3: 1 compresses better than zlib's 1 at a fraction of its CPU, and the files are short-lived.
    public var compressionLevel: Int = 1
    /// `maintenance_work_mem` of the sessions that build STG keys: an in-memory sort instead of
    /// one spilled to disk. Per load job, on the target.
    public var maintenanceWorkMem: Int = 256 << 20
    /// Uncompressed bytes of a table that its first load worker COPYs in one transaction with
    /// FREEZE (`PartLoadSchedule`): rows land frozen, so no vacuum has to rewrite them later. A
    /// kill undoes at most this much of a table's load; 0 loads every part on its own, unfrozen.
    public var freezeBytesMax: Int = 4 << 30
    /// `snapshot --apply`: compressed bytes of stored parts kept on local disk until loaded, so the
    /// loader does not fetch them back from the store (with OCI, a download). 0: always fetch.
    public var applyCacheBytes: Int = 1 << 30

    public init() {}
}

/// The target side (`slots/tributary.yaml`).
public struct TargetConfiguration: Sendable {
    /// libpq connection string of the Uni PACC database. Never log it.
    public var connection: String
    public var staging: StagingLocation
    /// Manifests in the staging store are signed and checked with this (HMAC-SHA256) when set.
    public var signingKey: String?
    /// How long applied batches stay in the staging store, and how often `run` collects.
    public var retention = RetentionSettings()
    /// Local scratch space: spill files and parts waiting for upload.
    public var workDirectory: String
    /// `work_max`: the most the work directory may hold (nil: bounded by its disk only).
    public var workMaximum: Int?
    public var batch: BatchLimits
    public var snapshot: SnapshotSettings
    public var oci: OCISettings
    public var transform = TransformSettings()
    public var sync = ObjectSyncSettings()
    public var file: String

    public init(connection: String, staging: StagingLocation, workDirectory: String,
                batch: BatchLimits = .init(), snapshot: SnapshotSettings = .init(), oci: OCISettings = .init(), file: String) {
        self.oci = oci
        self.connection = connection
        self.staging = staging
        self.workDirectory = workDirectory
        self.batch = batch
        self.snapshot = snapshot
        self.file = file
    }
}

/// `staging.retention` and `staging.gc_interval`.
public struct RetentionSettings: Sendable, Equatable {
    /// Applied batches are removed this long after they were applied; 0 keeps nothing applied.
    public var retention: Duration = .seconds(7 * 86_400)
    /// How often `tributary run` collects garbage.
    public var interval: Duration = .seconds(600)
    public init() {}
}
