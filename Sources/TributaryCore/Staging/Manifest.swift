import Foundation

/// One data file in the staging store, as a manifest lists it. The applier checks `sha256` and
/// `bytes` before it applies anything from the file.
public struct StagedFile: Sendable, Hashable, Codable {
    public var key: String
    public var rows: Int
    /// Size of the stored (compressed) object.
    public var bytes: Int
    public var uncompressedBytes: Int
    /// Hex SHA-256 of the stored object.
    public var sha256: String

    enum CodingKeys: String, CodingKey {
        case key, rows, bytes, sha256
        case uncompressedBytes = "uncompressed_bytes"
    }

    public init(key: String, rows: Int, bytes: Int, uncompressedBytes: Int, sha256: String) {
        self.key = key
        self.rows = rows
        self.bytes = bytes
        self.uncompressedBytes = uncompressedBytes
        self.sha256 = sha256
    }
}

/// One table of a snapshot: its schema, its STG table and its part files.
public struct SnapshotTable: Sendable, Hashable, Codable {
    public var relation: RelationSchema
    public var stagingTable: String
    public var rows: Int
    public var parts: [StagedFile]
    /// The parts come from two copies: a resume kept some ranges of a killed run and copied the
    /// rest under a later snapshot, so a key may be in both (`SnapshotSQL.keepOneRowPerKey`).
    public var keysMayRepeat: Bool?

    enum CodingKeys: String, CodingKey {
        case relation, rows, parts
        case stagingTable = "staging_table", keysMayRepeat = "keys_may_repeat"
    }

    public init(relation: RelationSchema, stagingTable: String, rows: Int, parts: [StagedFile], keysMayRepeat: Bool? = nil) {
        self.relation = relation
        self.stagingTable = stagingTable
        self.rows = rows
        self.parts = parts
        self.keysMayRepeat = keysMayRepeat
    }
}

/// `range-<n>.json` of one page range of a split table of a full snapshot: written once all its
/// parts are stored, so a resume keeps the range (`SnapshotPlanner.resume`).
public struct SnapshotRangeDone: VersionedManifest, Hashable {
    public static let currentFormat = "tributary-snapshot-range/1"

    public var format: String
    /// The table as copied, with this range's parts only.
    public var table: SnapshotTable
    public var pages: PageRange
    /// The oldest transaction running when the range's snapshot was taken (`pg_snapshot_xmin`):
    /// rows written by it or later may be newer than the copy.
    public var snapshotXmin: UInt64

    enum CodingKeys: String, CodingKey {
        case format, table, pages
        case snapshotXmin = "snapshot_xmin"
    }

    public init(table: SnapshotTable, pages: PageRange, snapshotXmin: UInt64) {
        self.format = Self.currentFormat
        self.table = table
        self.pages = pages
        self.snapshotXmin = snapshotXmin
    }
}

/// A manifest format with a version stamp, so a reader refuses what it does not know.
public protocol VersionedManifest: Codable, Sendable {
    static var currentFormat: String { get }
    var format: String { get }
}

/// What a snapshot covers. A full one is taken with the source's slot and replaces STG; one of
/// some tables is taken with a temporary slot of its own at any time later (a table added, a table
/// resynced, the rest of a killed full snapshot) and is merged into STG by LSN.
public enum SnapshotScope: String, Sendable, Hashable, Codable {
    case full
    case tables
}

/// `manifest.json` of a snapshot. Written last: a snapshot exists only once its manifest does.
public struct SnapshotManifest: VersionedManifest, Hashable {
    public static let currentFormat = "tributary-snapshot/1"

    public var format: String
    public var source: String
    public var slot: String
    /// The slot's consistent point: every row of the snapshot is as of this LSN, and streaming starts here.
    public var consistentPoint: LSN
    public var snapshotName: String
    public var startedAt: Date
    public var finishedAt: Date
    public var tables: [SnapshotTable]
    /// Absent in manifests written before per-table snapshots: full.
    public var scope: SnapshotScope?

    public var isFull: Bool { (scope ?? .full) == .full }

    enum CodingKeys: String, CodingKey {
        case format, source, slot, tables, scope
        case consistentPoint = "consistent_point", snapshotName = "snapshot_name", startedAt = "started_at", finishedAt = "finished_at"
    }

    public init(source: String, slot: String, consistentPoint: LSN, snapshotName: String,
                startedAt: Date, finishedAt: Date, tables: [SnapshotTable], scope: SnapshotScope = .full) {
        self.format = Self.currentFormat
        self.scope = scope
        self.source = source
        self.slot = slot
        self.consistentPoint = consistentPoint
        self.snapshotName = snapshotName
        self.startedAt = startedAt
        self.finishedAt = finishedAt
        self.tables = tables
    }
}

/// `started.json` of a full snapshot: written once its slot exists, before any part, so a rerun
/// after a kill knows the snapshot's consistent point and tables and resumes it.
public struct SnapshotStart: VersionedManifest, Hashable {
    public static let currentFormat = "tributary-snapshot-start/1"

    public var format: String
    public var source: String
    public var slot: String
    public var consistentPoint: LSN
    public var startedAt: Date
    public var tables: [String]
    /// The tables as they were at the consistent point, all in the publication by then: a resume
    /// continues one that is still the same into the same snapshot (`SnapshotResumer`). Absent
    /// before 2026-12-06.
    public var relations: [RelationSchema]?

    enum CodingKeys: String, CodingKey {
        case format, source, slot, tables, relations
        case consistentPoint = "consistent_point", startedAt = "started_at"
    }

    public init(source: String, slot: String, consistentPoint: LSN, startedAt: Date, tables: [String], relations: [RelationSchema]? = nil) {
        self.format = Self.currentFormat
        self.source = source
        self.slot = slot
        self.consistentPoint = consistentPoint
        self.startedAt = startedAt
        self.tables = tables
        self.relations = relations
    }
}

/// `table.json` of one table of a full snapshot: written once all its parts are stored.
public struct SnapshotTableDone: VersionedManifest, Hashable {
    public static let currentFormat = "tributary-snapshot-table/1"

    public var format: String
    public var table: SnapshotTable

    public init(table: SnapshotTable) {
        self.format = Self.currentFormat
        self.table = table
    }
}

/// The one JSON form of manifests: stable key order, ISO dates with microseconds (lag is measured
/// in fractions of a second), snake_case keys. Compact, without indentation: a batch manifest
/// names every file with its relation's columns, and at 600 tables its indentation was half of
/// its 630 KB, and manifests nearly all of the bytes staged per hour (bench-breadth). `pretty`
/// is for what a person reads (`status --json`, the operations server).
/// The JSON of what tributary stores (manifests in the staging store, shapes and files in the
/// control tables): sorted snake_case keys, spelled out in each type's `CodingKeys` rather than
/// converted by the coders, which made a batch's manifest take 2-3x as long to encode and decode
/// (a third of `run`'s CPU at 600 tables went to manifests). Times with microseconds, in UTC.
public enum ManifestCoding {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        Array(try encoder(outputFormatting: [.sortedKeys, .withoutEscapingSlashes]).encode(value))
    }

    /// With `dates` as stored; the keys as the caller's types name them.
    static func encoder(outputFormatting: JSONEncoder.OutputFormatting) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = outputFormatting
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Self.format(date))
        }
        return encoder
    }

    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws -> T {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Self.parse(text) else {
                throw DecodingError.dataCorruptedError(in: container, debugDescription: "not an ISO 8601 time: \(text)")
            }
            return date
        }
        return try decoder.decode(type, from: Data(bytes))
    }

    /// `2026-11-25T09:23:31.315304Z`
    public static func format(_ date: Date) -> String {
        let seconds = date.timeIntervalSince1970.rounded(.down)
        let micros = Int(((date.timeIntervalSince1970 - seconds) * 1_000_000).rounded())
        let whole = Date(timeIntervalSince1970: seconds).formatted(.iso8601.year().month().day().dateSeparator(.dash)
            .time(includingFractionalSeconds: false).timeSeparator(.colon))
        let fraction = String(min(micros, 999_999))
        return whole + "." + String(repeating: "0", count: 6 - fraction.count) + fraction + "Z"
    }

    /// Reads the form `format` writes (fractional seconds optional).
    public static func parseTimestamp(_ text: String) -> Date? { parse(text) }

    static func parse(_ text: String) -> Date? {
        guard text.hasSuffix("Z") else { return nil }
        let body = text.dropLast()
        let (whole, fraction) = body.firstIndex(of: ".").map { (body[..<$0], body[body.index(after: $0)...]) } ?? (body, "")
        guard let base = try? Date(String(whole) + "Z", strategy: .iso8601) else { return nil }
        let micros = fraction.isEmpty ? 0 : (Double("0." + fraction) ?? 0)
        return base.addingTimeInterval(micros)
    }
}
