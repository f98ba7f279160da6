import Foundation

/// What a listing says of one object (name relative to the location's prefix).
public struct ObjectEntry: Sendable, Hashable {
    public var name: String
    public var size: Int64
    /// Base64 MD5 of the content, or `<base64>-<parts>` for a multipart object: not a content hash then.
    public var md5: String?
    public var etag: String?

    public init(name: String, size: Int64, md5: String?, etag: String?) {
        self.name = name
        self.size = size
        self.md5 = md5
        self.etag = etag
    }

    /// Whether `md5` is the content's MD5 (a single-part object).
    public var hasContentMD5: Bool { md5.map { !$0.contains("-") } ?? false }
}

/// What was copied for a name: the source as it was then and the target object it became. It is
/// what tells an unchanged multipart object (whose MD5 says nothing of its content) from a changed one.
public struct CopyRecord: Sendable, Hashable {
    public var name: String
    public var sourceSize: Int64
    public var sourceMD5: String?
    public var sourceETag: String?
    public var targetETag: String?

    public init(name: String, sourceSize: Int64, sourceMD5: String?, sourceETag: String?, targetETag: String?) {
        self.name = name
        self.sourceSize = sourceSize
        self.sourceMD5 = sourceMD5
        self.sourceETag = sourceETag
        self.targetETag = targetETag
    }
}

/// The listing diff's decision for one name (DESIGN.md §4c).
public enum ObjectDiff {
    public enum Decision: Sendable, Equatable {
        /// In the source only: copy it.
        case copy
        /// In both, different (or not provably the same): copy it again.
        case replace
        case unchanged
        /// In the target only: a delete, if the policy allows.
        case extra
    }

    public static func decide(source: ObjectEntry?, target: ObjectEntry?, record: CopyRecord?) -> Decision {
        guard let source else { return .extra }
        guard let target else { return .copy }
        guard source.size == target.size else { return .replace }
        if source.hasContentMD5 && target.hasContentMD5 { return source.md5 == target.md5 ? .unchanged : .replace }
        // A multipart MD5 on either side: only what was recorded at the copy can vouch for it.
        guard let record, record.sourceSize == source.size, record.targetETag != nil, record.targetETag == target.etag else {
            return .replace
        }
        if source.hasContentMD5 { return record.sourceMD5 == source.md5 ? .unchanged : .replace }
        return record.sourceETag != nil && record.sourceETag == source.etag ? .unchanged : .replace
    }
}

/// The position a pass may resume from: the last name such that it and every name before it are
/// done. Copies finish out of order; this follows them, holding only the copies in flight (never
/// the names listed meanwhile), so a slow copy costs no memory per object listed behind it.
public struct SyncCheckpoint: Sendable {
    /// Copies in flight, each with the name listed just before it.
    private var inFlightNames: [(name: String, before: String?)] = []
    private var lastListed: String?

    public init(resumingAt position: String? = nil) { lastListed = position }

    /// A name handed to the copiers (names come in order).
    public mutating func started(_ name: String) {
        inFlightNames.append((name, lastListed))
        lastListed = name
    }

    /// A name that needed nothing.
    public mutating func skipped(_ name: String) { lastListed = name }

    public mutating func finished(_ name: String) {
        if let index = inFlightNames.firstIndex(where: { $0.name == name }) { inFlightNames.remove(at: index) }
    }

    public var inFlight: Int { inFlightNames.count }

    /// Everything up to here is done.
    public var position: String? { inFlightNames.first.map(\.before) ?? lastListed }
}
