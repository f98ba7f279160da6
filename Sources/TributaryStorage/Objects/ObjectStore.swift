import Foundation
import TributaryCore

/// A bucket prefix (or a directory) whose objects the object sync lists, reads and writes; names
/// are relative to the prefix. Listings come in pages, in byte order, so two of them merge-join in
/// constant memory; objects are read by range and written in parts, so none is ever whole in memory.
public protocol ObjectStore: Sendable, CustomStringConvertible {
    /// Objects after `after` (nil: from the start), at most `limit`; `more` while the listing goes on.
    func list(after: String?, limit: Int) async throws -> (objects: [ObjectEntry], more: Bool)
    func head(_ name: String) async throws -> ObjectEntry?
    /// The object's bytes (or a range of them), only while its ETag is `ifMatch` (when given).
    func read(_ name: String, range: ClosedRange<Int64>?, ifMatch: String?) async throws -> [UInt8]
    /// Writes a whole object; returns its ETag.
    func write(_ name: String, bytes: [UInt8]) async throws -> String?
    /// Writes an object of `size` bytes in parts of `partSize`, each from `part(number, range)`
    /// (numbers from 1); returns its ETag.
    func write(_ name: String, size: Int64, partSize: Int,
               part: @escaping @Sendable (Int, ClosedRange<Int64>) async throws -> [UInt8]) async throws -> String?
    func delete(_ name: String) async throws
}

extension ObjectStore {
    /// The byte ranges of an object of `size` in parts of `partSize`.
    public static func ranges(size: Int64, partSize: Int) -> [ClosedRange<Int64>] {
        MultipartPlan(size: size, partSize: Int64(partSize)).parts.filter { $0.length > 0 }.map { $0.offset...($0.offset + $0.length - 1) }
    }
}

/// UTF-8 byte order, the order Object Storage lists in (Swift's `<` on `String` is another).
public func utf8Precedes(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}
