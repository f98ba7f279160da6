import Foundation
import TributaryCore

/// What a request sends as its body.
public enum HTTPBody: Sendable {
    case empty
    case bytes([UInt8])
    /// `length` bytes of a local file from `offset`: large uploads stream from disk.
    case file(path: String, offset: Int64, length: Int64)

    public var length: Int64 {
        switch self {
        case .empty: return 0
        case .bytes(let bytes): return Int64(bytes.count)
        case .file(_, _, let length): return length
        }
    }
}

public struct HTTPRequest: Sendable {
    public var method: String
    /// Scheme, host and port, no trailing slash: `https://objectstorage.eu-frankfurt-1.oraclecloud.com`.
    public var endpoint: String
    /// The path and query exactly as they go on the wire (already percent-encoded).
    public var pathAndQuery: String
    public var headers: [(String, String)]
    public var body: HTTPBody
    /// When set, a successful (2xx) response body is streamed to this file instead of memory.
    public var responseFile: String?
    /// Adds `Content-MD5` of the body, computed on the connection's thread (it reads the file).
    public var addsContentMD5 = false

    public init(method: String, endpoint: String, pathAndQuery: String, headers: [(String, String)] = [],
                body: HTTPBody = .empty, responseFile: String? = nil) {
        self.method = method
        self.endpoint = endpoint
        self.pathAndQuery = pathAndQuery
        self.headers = headers
        self.body = body
        self.responseFile = responseFile
    }
}

extension HTTPBody {
    /// Base64 MD5 of the body, as `Content-MD5` carries it. Reads a file body: call it off the
    /// cooperative pool.
    func contentMD5() throws -> String {
        let digest = MessageDigest(.md5)
        switch self {
        case .empty: break
        case .bytes(let bytes): digest.update(bytes)
        case .file(let path, let offset, let length):
            let input = try FileInput(path: path)
            try input.seek(to: offset)
            var remaining = length
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 16)
            defer { buffer.deallocate() }
            while remaining > 0 {
                let read = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<Int(min(Int64(buffer.count), remaining))]))
                guard read > 0 else { throw StorageError.corrupt(key: path, reason: "shorter than \(offset + length) bytes") }
                digest.update(UnsafeRawBufferPointer(rebasing: buffer[0..<read]))
                remaining -= Int64(read)
            }
        }
        return Data(digest.finalizeBytes()).base64EncodedString()
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Lower-case names.
    public var headers: [String: String]
    /// The body, unless it went to `responseFile`.
    public var body: [UInt8]

    public func header(_ name: String) -> String? { headers[name.lowercased()] }
}

/// A request that got no HTTP answer: refused, reset, timed out, cut short.
public struct HTTPTransportError: Error, Sendable, CustomStringConvertible {
    public var code: Int
    public var message: String
    public var endpoint: String

    public var description: String { "cannot reach \(endpoint): \(message)" }
}
