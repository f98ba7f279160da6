/// Object keys in the staging store (the OCI layer). Keys are deterministic, so a replayed batch or a
/// re-run snapshot writes the same names, and LSNs are 16 zero-padded hex digits, so lexical listing
/// order is LSN order.
///
///     <source>/snapshot/<consistent-lsn>/manifest.json
///     <source>/snapshot/<consistent-lsn>/started.json                  (the plan, written first)
///     <source>/snapshot/<consistent-lsn>/<schema>.<table>/<range>-<part>.csv.gz
///     <source>/snapshot/<consistent-lsn>/<schema>.<table>/table.json   (every part of the table stored)
///     <source>/snapshot/<consistent-lsn>/<schema>.<table>/range-<range>.json   (every part of a range stored)
///     <source>/tables/<table-consistent-lsn>/manifest.json              (a per-table snapshot)
///     <source>/tables/<table-consistent-lsn>/<schema>.<table>/<range>-<part>.csv.gz
///     <source>/cdc/<end-lsn>/manifest.json
///     <source>/cdc/<end-lsn>/<schema>.<table>.csv.gz     (<schema>.<table>~1.csv.gz after a schema change)
public enum ObjectNaming {
    public static let manifestName = "manifest.json"

    public static func snapshotPrefix(source: String) -> String { "\(source)/snapshot/" }

    public static func snapshotDirectory(source: String, consistentPoint: LSN) -> String {
        snapshotPrefix(source: source) + consistentPoint.paddedHex + "/"
    }

    public static func snapshotManifest(source: String, consistentPoint: LSN) -> String {
        snapshotDirectory(source: source, consistentPoint: consistentPoint) + manifestName
    }

    public static func snapshotPart(source: String, consistentPoint: LSN, table: QualifiedName, range: Int, part: Int,
                                    scope: SnapshotScope = .full) -> String {
        directory(scope, source: source, consistentPoint: consistentPoint)
            + tableComponent(table) + "/" + padded(range, 5) + "-" + padded(part, 4) + ".csv.gz"
    }

    /// Written when a full snapshot's slot exists, before any part: what a rerun resumes.
    public static func snapshotStarted(source: String, consistentPoint: LSN) -> String {
        snapshotDirectory(source: source, consistentPoint: consistentPoint) + "started.json"
    }

    /// Written once every part of one table of a snapshot is stored: a resumed snapshot keeps it.
    public static func snapshotTableDone(source: String, consistentPoint: LSN, table: QualifiedName, scope: SnapshotScope = .full) -> String {
        directory(scope, source: source, consistentPoint: consistentPoint) + tableComponent(table) + "/table.json"
    }

    /// Written once every part of one page range of a split table is stored: a resume keeps the range.
    public static func snapshotRangeDone(source: String, consistentPoint: LSN, table: QualifiedName, range: Int) -> String {
        snapshotDirectory(source: source, consistentPoint: consistentPoint) + tableComponent(table) + "/range-" + padded(range, 5) + ".json"
    }

    /// The range number in a key under a snapshot table's directory: of a part or a range marker.
    public static func snapshotRangeIndex(ofKey key: String) -> Int? {
        let name = key.split(separator: "/").last.map(String.init) ?? key
        if name.hasSuffix(".csv.gz") { return Int(name.prefix(5)) }
        if name.hasPrefix("range-"), name.hasSuffix(".json") { return Int(name.dropFirst(6).prefix(5)) }
        return nil
    }

    public static func tableSnapshotPrefix(source: String) -> String { "\(source)/tables/" }

    public static func tableSnapshotManifest(source: String, consistentPoint: LSN) -> String {
        directory(.tables, source: source, consistentPoint: consistentPoint) + manifestName
    }

    /// The directory of a snapshot of either scope.
    public static func directory(_ scope: SnapshotScope, source: String, consistentPoint: LSN) -> String {
        switch scope {
        case .full: return snapshotDirectory(source: source, consistentPoint: consistentPoint)
        case .tables: return tableSnapshotPrefix(source: source) + consistentPoint.paddedHex + "/"
        }
    }

    public static func manifest(_ scope: SnapshotScope, source: String, consistentPoint: LSN) -> String {
        directory(scope, source: source, consistentPoint: consistentPoint) + manifestName
    }

    public static func cdcPrefix(source: String) -> String { "\(source)/cdc/" }

    public static func cdcDirectory(source: String, endLSN: LSN) -> String {
        cdcPrefix(source: source) + endLSN.paddedHex + "/"
    }

    public static func cdcFile(source: String, endLSN: LSN, table: QualifiedName, segment: Int = 0) -> String {
        cdcDirectory(source: source, endLSN: endLSN) + tableComponent(table) + (segment == 0 ? "" : "~\(segment)") + ".csv.gz"
    }

    public static func cdcManifest(source: String, endLSN: LSN) -> String {
        cdcDirectory(source: source, endLSN: endLSN) + manifestName
    }

    /// The LSN directory a key under `<source>/snapshot/` or `<source>/cdc/` belongs to.
    public static func lsnComponent(of key: String, after prefix: String) -> LSN? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        return LSN(rest[rest.startIndex..<slash])
    }

    /// `schema.table` with every byte outside `A-Z a-z 0-9 _ -` percent-encoded, so any identifier
    /// (dots, slashes, quotes, unicode) makes one safe path component on every store.
    public static func tableComponent(_ table: QualifiedName) -> String {
        encode(table.schema) + "." + encode(table.name)
    }

    static func encode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }

    static func padded(_ number: Int, _ width: Int) -> String {
        let text = String(number)
        return String(repeating: "0", count: max(0, width - text.count)) + text
    }
}
