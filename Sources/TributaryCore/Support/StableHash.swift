/// A short name for a longer text that is the same in every process and release (Swift's
/// `Hasher` is seeded per process): FNV-1a over the UTF-8 bytes, 64 bits, as 16 hex digits.
/// For naming work tables, where a collision would only share a table of the same text.
public enum StableHash {
    public static func hex(_ text: String) -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
