import COpenSSL

/// Manifests signed with a key only tributary holds (`staging: {signing_key: …}` in tributary.yaml):
/// HMAC-SHA256 of the manifest's bytes, in a last line of its own. A manifest lists every data file
/// of a batch or snapshot with its SHA-256, so its signature covers them all: whoever can write to
/// the staging store but lacks the key can make the applier refuse a batch, never apply one.
public enum ManifestSignature {
    static let prefix = Array("\ntributary-hmac-sha256: ".utf8)

    public struct Refused: Error, CustomStringConvertible, Equatable {
        public var reason: String
        public var description: String { reason }
    }

    /// The manifest with its signature line.
    public static func sign(_ bytes: [UInt8], key: [UInt8]) -> [UInt8] {
        bytes + prefix + Array(hex(mac(bytes, key: key)).utf8) + [UInt8(ascii: "\n")]
    }

    /// The manifest without its signature line, once the line is checked against `key`; without a
    /// key, the line (if any) is only taken off.
    public static func verified(_ signed: [UInt8], key: [UInt8]?) throws -> [UInt8] {
        let (body, signature) = split(signed)
        guard let key else { return body }
        guard let signature else { throw Refused(reason: "it is not signed, and this configuration signs manifests") }
        let expected = Array(hex(mac(body, key: key)).utf8)
        guard signature.count == expected.count, CRYPTO_memcmp(signature, expected, expected.count) == 0 else {
            throw Refused(reason: "its signature does not match: it was not written with this configuration's signing key")
        }
        return body
    }

    /// The body and the hex signature, when the last line is one.
    static func split(_ bytes: [UInt8]) -> ([UInt8], [UInt8]?) {
        var end = bytes.count
        if end > 0 && bytes[end - 1] == UInt8(ascii: "\n") { end -= 1 }
        guard end >= prefix.count + 64 else { return (bytes, nil) }
        let start = end - 64 - prefix.count
        guard Array(bytes[start..<(start + prefix.count)]) == prefix else { return (bytes, nil) }
        return (Array(bytes[..<start]), Array(bytes[(start + prefix.count)..<end]))
    }

    static func mac(_ bytes: [UInt8], key: [UInt8]) -> [UInt8] {
        var output = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 32
        _ = key.withUnsafeBytes { keyBytes in
            bytes.withUnsafeBytes { data in
                HMAC(EVP_sha256(), keyBytes.baseAddress, Int32(key.count), data.baseAddress?.assumingMemoryBound(to: UInt8.self),
                     data.count, &output, &length)
            }
        }
        return output
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text = [UInt8]()
        text.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 15)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}
