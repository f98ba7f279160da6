import COpenSSL

/// Incremental message digest (libcrypto): SHA-256 for manifests' checksums, MD5 for OCI's
/// `Content-MD5`.
public class MessageDigest {
    public enum Algorithm: Sendable {
        case sha256, md5
    }

    private let context: OpaquePointer
    private let length: Int

    public init(_ algorithm: Algorithm) {
        context = EVP_MD_CTX_new()!
        switch algorithm {
        case .sha256:
            EVP_DigestInit_ex(context, EVP_sha256(), nil)
            length = 32
        case .md5:
            EVP_DigestInit_ex(context, EVP_md5(), nil)
            length = 16
        }
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        EVP_DigestUpdate(context, base, bytes.count)
    }

    public func update(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// The digest. Ends the hasher.
    public func finalizeBytes() -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 64)
        var written: UInt32 = 0
        EVP_DigestFinal_ex(context, &digest, &written)
        return Array(digest.prefix(length))
    }

    /// Lower-case hex digest. Ends the hasher.
    public func finalizeHex() -> String { Hex.encode(finalizeBytes()) }
}

public final class SHA256Hasher: MessageDigest {
    public init() { super.init(.sha256) }

    public static func hex(_ bytes: [UInt8]) -> String {
        let hasher = SHA256Hasher()
        hasher.update(bytes)
        return hasher.finalizeHex()
    }
}

public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
