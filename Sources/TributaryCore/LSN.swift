/// A PostgreSQL write-ahead-log position.
///
/// Text form is PostgreSQL's own (`16/B374D848`); `paddedHex` is the 16-digit form used in object
/// names, so that lexical order of names is LSN order.
public struct LSN: Sendable, Hashable, Comparable, CustomStringConvertible, Codable {
    public let value: UInt64

    public static let zero = LSN(0)

    public init(_ value: UInt64) { self.value = value }

    /// Parses `X/Y` (PostgreSQL's text form) or 16 hex digits (the object-name form).
    public init?(_ text: some StringProtocol) {
        if let slash = text.firstIndex(of: "/") {
            guard let high = UInt32(text[text.startIndex..<slash], radix: 16),
                  let low = UInt32(text[text.index(after: slash)...], radix: 16) else { return nil }
            value = UInt64(high) << 32 | UInt64(low)
        } else if text.count == 16, let parsed = UInt64(text, radix: 16) {
            value = parsed
        } else {
            return nil
        }
    }

    public var description: String {
        String(value >> 32, radix: 16, uppercase: true) + "/" + String(value & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    /// 16 zero-padded upper-case hex digits: sorts lexically in LSN order.
    public var paddedHex: String {
        let hex = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.value < rhs.value }

    /// The position one byte before this one (0/0 stays 0/0): older than a commit that starts
    /// here, newer than every commit that started before it (records start at least 8 bytes
    /// apart). What a copy at a slot's consistent point, or a truncate's tombstones, are tagged
    /// with, so that the commit at the point itself still wins under the merge's strict guard.
    public var justBefore: LSN { LSN(max(value, 1) - 1) }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let lsn = LSN(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an LSN: \(text)"))
        }
        self = lsn
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
