import COpenSSL
import Foundation

/// An OCI API signing key (RSA), loaded from PEM: PKCS#1 or PKCS#8, encrypted with a passphrase or not.
public final class OCIPrivateKey: @unchecked Sendable {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadable(String)
        case wrongPassphrase
        case notRSA

        public var description: String {
            switch self {
            case .unreadable(let reason): return "the API key is not a PEM private key (\(reason))"
            case .wrongPassphrase: return "the API key is encrypted and the passphrase (pass_phrase) is missing or wrong"
            case .notRSA: return "the API key is not an RSA key: OCI API keys are RSA"
            }
        }
    }

    // Read-only after init; OpenSSL 3 allows concurrent signing with one key and a context each.
    fileprivate let key: OpaquePointer

    public init(pem: [UInt8], passphrase: String?) throws {
        let encrypted = String(decoding: pem, as: UTF8.self).contains("ENCRYPTED")
        // A memory BIO that owns a copy: BIO_new_mem_buf would borrow the array's storage past the
        // closure that lends it, which an optimised build may already have freed.
        guard let bio = BIO_new(BIO_s_mem()), pem.withUnsafeBytes({ BIO_write(bio, $0.baseAddress, Int32($0.count)) }) == Int32(pem.count) else {
            throw Failure.unreadable("out of memory")
        }
        defer { BIO_free(bio) }
        ERR_clear_error()
        // With no callback, OpenSSL takes the last argument as the passphrase; an empty one for a
        // plain key makes it fail fast instead of prompting on a terminal.
        let loaded = (passphrase ?? "").withCString { PEM_read_bio_PrivateKey(bio, nil, nil, UnsafeMutableRawPointer(mutating: $0)) }
        guard let loaded else {
            let code = ERR_get_error()
            if encrypted { throw Failure.wrongPassphrase }
            var text = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &text, text.count)
            throw Failure.unreadable(String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
        guard EVP_PKEY_get_base_id(loaded) == EVP_PKEY_RSA else {
            EVP_PKEY_free(loaded)
            throw Failure.notRSA
        }
        key = loaded
    }

    deinit { EVP_PKEY_free(key) }

    /// RSASSA-PKCS1-v1_5 with SHA-256: deterministic, so vectors compare byte for byte.
    public func signSHA256(_ message: [UInt8]) throws -> [UInt8] {
        guard let context = EVP_MD_CTX_new() else { throw Failure.unreadable("out of memory") }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestSignInit(context, nil, EVP_sha256(), nil, key) == 1,
              message.withUnsafeBytes({ EVP_DigestSignUpdate(context, $0.baseAddress, $0.count) }) == 1 else {
            throw Failure.unreadable("signing failed")
        }
        var length = 0
        EVP_DigestSignFinal(context, nil, &length)
        var signature = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSignFinal(context, &signature, &length) == 1 else { throw Failure.unreadable("signing failed") }
        return Array(signature.prefix(length))
    }
}

/// OCI API request signing, version 1 (draft-cavage HTTP signatures, rsa-sha256).
public struct OCIRequestSigner: Sendable {
    /// `<tenancy>/<user>/<fingerprint>`.
    public let keyID: String
    public let key: OCIPrivateKey

    public init(tenancy: String, user: String, fingerprint: String, key: OCIPrivateKey) {
        keyID = "\(tenancy)/\(user)/\(fingerprint)"
        self.key = key
    }

    public struct Signed: Sendable, Equatable {
        public var signedHeaders: [String]
        public var signingString: String
        public var signature: String
        /// The value of the `authorization` header.
        public var authorization: String
    }

    /// - Parameters:
    ///   - headers: lower-case names; must hold `date` and `host`, and when `signsBody` also
    ///     `content-length`, `content-type` and `x-content-sha256` (see `contentSHA256`).
    ///   - signsBody: false for GET, HEAD, DELETE and for PutObject and UploadPart, whose bodies OCI
    ///     does not sign (they may be streamed); true for the other PUT and POST calls.
    public func sign(method: String, pathAndQuery: String, headers: [String: String], signsBody: Bool) throws -> Signed {
        var names = ["date", "(request-target)", "host"]
        if signsBody { names += ["content-length", "content-type", "x-content-sha256"] }
        let lines = try names.map { name -> String in
            if name == "(request-target)" { return "(request-target): \(method.lowercased()) \(pathAndQuery)" }
            guard let value = headers[name] else { throw OCIPrivateKey.Failure.unreadable("header \(name) must be set before signing") }
            return "\(name): \(value)"
        }
        let signingString = lines.joined(separator: "\n")
        let signature = Data(try key.signSHA256(Array(signingString.utf8))).base64EncodedString()
        let authorization = "Signature algorithm=\"rsa-sha256\",headers=\"\(names.joined(separator: " "))\","
            + "keyId=\"\(keyID)\",signature=\"\(signature)\",version=\"1\""
        return Signed(signedHeaders: names, signingString: signingString, signature: signature, authorization: authorization)
    }

    /// `x-content-sha256`: base64 of the body's SHA-256.
    public static func contentSHA256(_ body: [UInt8]) -> String {
        let hasher = SHA256Hasher()
        hasher.update(body)
        return Data(hasher.finalizeBytes()).base64EncodedString()
    }

    /// The `date` header: RFC 7231 in GMT, English month names whatever the locale.
    public static func httpDate(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss 'GMT'"
        return formatter.string(from: date)
    }
}
