import Foundation
import Logging
import Metrics
import TributaryCore

/// The Object Storage calls Tributary needs, signed with an API key, retried with backoff on 429,
/// 5xx and lost connections (each attempt signed afresh, so its Date is current).
public final class OCIObjectStorageClient: Sendable {
    public struct Settings: Sendable {
        /// Files above this are uploaded in parts.
        public var multipartThreshold: Int64 = 128 << 20
        public var partSize: Int64 = 64 << 20
        public var retry = OCIRetryPolicy()
        public var http = HTTPClient.Settings()

        public init() {}
    }

    public let endpoint: String
    public let settings: Settings
    private let host: String
    private let signer: OCIRequestSigner
    private let http: HTTPClient
    private let logger: Logger

    /// - Parameter endpoint: `https://objectstorage.<region>.oraclecloud.com`, or an override such as
    ///   `http://127.0.0.1:9000` for the emulator.
    public init(endpoint: String, signer: OCIRequestSigner, settings: Settings = .init(), logger: Logger) throws {
        var trimmed = endpoint
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let components = URLComponents(string: trimmed), let scheme = components.scheme, ["http", "https"].contains(scheme),
              let host = components.host, !host.isEmpty, components.path.isEmpty else {
            throw OCIError.malformedReply(operation: "endpoint", detail: "\"\(endpoint)\" is not an http(s)://host[:port] URL")
        }
        self.endpoint = trimmed
        self.host = components.port.map { "\(host):\($0)" } ?? host
        self.signer = signer
        self.settings = settings
        http = HTTPClient(settings: settings.http)
        self.logger = logger
    }

    public static func endpoint(region: String) -> String { "https://objectstorage.\(region).oraclecloud.com" }

    // MARK: Calls

    public func namespace() async throws -> String {
        let response = try await send("GetNamespace", object: "", method: "GET", path: OCIPath.namespace() + "/")
        guard let name = try? JSONDecoder().decode(String.self, from: Data(response.body)) else {
            throw OCIError.malformedReply(operation: "GetNamespace", detail: String(decoding: response.body.prefix(200), as: UTF8.self))
        }
        return name
    }

    /// Uploads `length` bytes of `path` (from `offset`), in parts when above the threshold.
    /// - Parameter ifAbsent: send `if-none-match: *`, so an existing object is never replaced.
    public func upload(namespace: String, bucket: String, name: String, file path: String, ifAbsent: Bool = false) async throws {
        var status = stat()
        guard stat(path, &status) == 0 else { throw StorageError.io(operation: "stat", path: path, errno: errno) }
        let size = Int64(status.st_size)
        if size > settings.multipartThreshold && !ifAbsent {
            try await uploadInParts(namespace: namespace, bucket: bucket, name: name, file: path, size: size)
        } else {
            try await putObject(namespace: namespace, bucket: bucket, name: name, body: .file(path: path, offset: 0, length: size),
                                ifAbsent: ifAbsent)
        }
    }

    /// PutObject. Its body is not signed (OCI does not require it, so it can stream); `Content-MD5`
    /// makes the service reject a body damaged on the way.
    public func putObject(namespace: String, bucket: String, name: String, body: HTTPBody, ifAbsent: Bool = false) async throws {
        var headers = [("content-type", "application/octet-stream")]
        if ifAbsent { headers.append(("if-none-match", "*")) }
        _ = try await send("PutObject", object: name, method: "PUT",
                           path: OCIPath.object(namespace: namespace, bucket: bucket, name: name), headers: headers, body: body,
                           contentMD5: true)
    }

    /// GetObject, into memory or streamed to `file`. Nil when the object does not exist.
    public func getObject(namespace: String, bucket: String, name: String, range: ClosedRange<Int64>? = nil,
                          toFile file: String? = nil) async throws -> HTTPResponse? {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        let response = try await send("GetObject", object: name, method: "GET",
                                      path: OCIPath.object(namespace: namespace, bucket: bucket, name: name),
                                      headers: headers, responseFile: file, accepting: [404])
        return response.status == 404 ? nil : response
    }

    /// GetObject of (a range of) an object into memory, only while its ETag is `ifMatch`: a part of
    /// an object that changed meanwhile is never mixed with parts of its earlier content (412).
    public func getBytes(namespace: String, bucket: String, name: String, range: ClosedRange<Int64>?, ifMatch: String?) async throws -> [UInt8] {
        var headers: [(String, String)] = []
        if let range { headers.append(("range", "bytes=\(range.lowerBound)-\(range.upperBound)")) }
        if let ifMatch { headers.append(("if-match", ifMatch)) }
        return try await send("GetObject", object: name, method: "GET", path: OCIPath.object(namespace: namespace, bucket: bucket, name: name),
                              headers: headers).body
    }

    /// PutObject from memory; returns the new object's ETag.
    @discardableResult
    public func putBytes(namespace: String, bucket: String, name: String, bytes: [UInt8]) async throws -> String? {
        try await send("PutObject", object: name, method: "PUT", path: OCIPath.object(namespace: namespace, bucket: bucket, name: name),
                       headers: [("content-type", "application/octet-stream")], body: .bytes(bytes), contentMD5: true).header("etag")
    }

    /// A multipart upload whose parts come from `part` (1-based number → bytes), `connections` at a
    /// time; aborted on any failure. Returns the object's ETag.
    public func uploadParts(namespace: String, bucket: String, name: String, count: Int,
                            part: @escaping @Sendable (Int) async throws -> [UInt8]) async throws -> String? {
        let uploadID = try await createMultipartUpload(namespace: namespace, bucket: bucket, name: name)
        do {
            var committed: [OCIModels.CommitPart] = []
            try await withThrowingTaskGroup(of: OCIModels.CommitPart.self) { group in
                var next = 1
                func add() {
                    let number = next
                    next += 1
                    group.addTask {
                        let bytes = try await part(number)
                        let path = OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: name),
                                                     [("uploadId", uploadID), ("uploadPartNum", String(number))])
                        let response = try await self.send("UploadPart", object: "\(name) part \(number)", method: "PUT", path: path,
                                                           body: .bytes(bytes), contentMD5: true)
                        guard let etag = response.header("etag") else { throw OCIError.malformedReply(operation: "UploadPart", detail: "no ETag") }
                        return OCIModels.CommitPart(partNum: number, etag: etag)
                    }
                }
                for _ in 0..<min(count, max(1, settings.http.connections)) { add() }
                while let done = try await group.next() {
                    committed.append(done)
                    if next <= count { add() }
                }
            }
            let body = try JSONEncoder().encode(OCIModels.CommitMultipartUpload(partsToCommit: committed.sorted { $0.partNum < $1.partNum }))
            let path = OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: name), [("uploadId", uploadID)])
            return try await send("CommitMultipartUpload", object: name, method: "POST", path: path, json: Array(body)).header("etag")
        } catch {
            try? await abortMultipartUpload(namespace: namespace, bucket: bucket, name: name, uploadID: uploadID)
            throw error
        }
    }

    /// CopyObject: Object Storage copies the object itself, no byte through this host. Returns the
    /// work request to follow.
    public func copyObject(namespace: String, bucket: String, details: OCIModels.CopyObjectDetails) async throws -> String {
        let body = try JSONEncoder().encode(details)
        let response = try await send("CopyObject", object: details.sourceObjectName, method: "POST",
                                      path: OCIPath.copyObject(namespace: namespace, bucket: bucket), json: Array(body))
        guard let id = response.header("opc-work-request-id") else {
            throw OCIError.malformedReply(operation: "CopyObject", detail: "no opc-work-request-id")
        }
        return id
    }

    public func workRequest(_ id: String) async throws -> OCIModels.WorkRequest {
        try decode(OCIModels.WorkRequest.self, try await send("GetWorkRequest", object: id, method: "GET", path: OCIPath.workRequest(id)),
                   operation: "GetWorkRequest")
    }

    public func workRequestErrors(_ id: String) async throws -> [OCIModels.WorkRequestError] {
        try decode([OCIModels.WorkRequestError].self, try await send("ListWorkRequestErrors", object: id, method: "GET",
                                                                     path: OCIPath.workRequestErrors(id)), operation: "ListWorkRequestErrors")
    }

    /// HeadObject with what it says of the object: size, ETag and MD5; nil when it does not exist.
    public func headEntry(namespace: String, bucket: String, name: String) async throws -> (size: Int64, etag: String?, md5: String?)? {
        let response = try await send("HeadObject", object: name, method: "HEAD",
                                      path: OCIPath.object(namespace: namespace, bucket: bucket, name: name), accepting: [404])
        guard response.status != 404, let size = response.header("content-length").flatMap(Int64.init) else { return nil }
        return (size, response.header("etag"), response.header("content-md5") ?? response.header("opc-multipart-md5"))
    }

    /// HeadObject: the size, or nil when the object does not exist.
    public func headObject(namespace: String, bucket: String, name: String) async throws -> Int64? {
        let response = try await send("HeadObject", object: name, method: "HEAD",
                                      path: OCIPath.object(namespace: namespace, bucket: bucket, name: name), accepting: [404])
        guard response.status != 404 else { return nil }
        guard let length = response.header("content-length").flatMap(Int64.init) else {
            throw OCIError.malformedReply(operation: "HeadObject", detail: "no Content-Length for \(name)")
        }
        return length
    }

    /// DeleteObject; false when there was nothing to delete.
    @discardableResult
    public func deleteObject(namespace: String, bucket: String, name: String) async throws -> Bool {
        let response = try await send("DeleteObject", object: name, method: "DELETE",
                                      path: OCIPath.object(namespace: namespace, bucket: bucket, name: name), accepting: [404])
        return response.status != 404
    }

    /// One page of ListObjects; `end` bounds the names from above, strictly.
    public func listObjectsPage(namespace: String, bucket: String, prefix: String?, start: String?, startAfter: String?,
                                end: String? = nil, limit: Int? = nil, fields: String = "name,size") async throws -> OCIModels.ListObjects {
        let path = OCIPath.withQuery(OCIPath.objects(namespace: namespace, bucket: bucket), [
            ("prefix", prefix), ("start", start), ("startAfter", startAfter), ("end", end), ("limit", limit.map(String.init)), ("fields", fields),
        ])
        let response = try await send("ListObjects", object: prefix ?? "", method: "GET", path: path)
        return try decode(OCIModels.ListObjects.self, response, operation: "ListObjects")
    }

    /// Every object under `prefix` after `startAfter` and before `end`, following `nextStartWith`
    /// to the end.
    public func listObjects(namespace: String, bucket: String, prefix: String?, startAfter: String?, end: String? = nil,
                            pageSize: Int? = nil) async throws -> [OCIModels.ObjectSummary] {
        var objects: [OCIModels.ObjectSummary] = []
        var page = try await listObjectsPage(namespace: namespace, bucket: bucket, prefix: prefix, start: nil, startAfter: startAfter,
                                             end: end, limit: pageSize)
        while true {
            objects += page.objects
            guard let next = page.nextStartWith else { return objects }
            // `start` is inclusive: the page begins with `next`, which no earlier page held.
            page = try await listObjectsPage(namespace: namespace, bucket: bucket, prefix: prefix, start: next, startAfter: startAfter,
                                             end: end, limit: pageSize)
        }
    }

    // MARK: Multipart

    public func createMultipartUpload(namespace: String, bucket: String, name: String) async throws -> String {
        let body = try JSONEncoder().encode(OCIModels.CreateMultipartUpload(object: name))
        let response = try await send("CreateMultipartUpload", object: name, method: "POST",
                                      path: OCIPath.uploads(namespace: namespace, bucket: bucket), json: Array(body))
        return try decode(OCIModels.MultipartUpload.self, response, operation: "CreateMultipartUpload").uploadId
    }

    /// UploadPart: the part's ETag.
    public func uploadPart(namespace: String, bucket: String, name: String, uploadID: String, part: MultipartPlan.Part, file: String) async throws -> String {
        let path = OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: name),
                                     [("uploadId", uploadID), ("uploadPartNum", String(part.number))])
        let response = try await send("UploadPart", object: "\(name) part \(part.number)", method: "PUT", path: path,
                                      body: .file(path: file, offset: part.offset, length: part.length), contentMD5: true)
        guard let etag = response.header("etag") else { throw OCIError.malformedReply(operation: "UploadPart", detail: "no ETag") }
        return etag
    }

    public func commitMultipartUpload(namespace: String, bucket: String, name: String, uploadID: String, parts: [OCIModels.CommitPart]) async throws {
        let body = try JSONEncoder().encode(OCIModels.CommitMultipartUpload(partsToCommit: parts))
        let path = OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: name), [("uploadId", uploadID)])
        _ = try await send("CommitMultipartUpload", object: name, method: "POST", path: path, json: Array(body))
    }

    public func abortMultipartUpload(namespace: String, bucket: String, name: String, uploadID: String) async throws {
        let path = OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: name), [("uploadId", uploadID)])
        _ = try await send("AbortMultipartUpload", object: name, method: "DELETE", path: path, accepting: [404])
    }

    /// Parts go up in parallel (as many as the client has connections), each streamed from its byte
    /// range of the file, so no part sits in memory whole. Any failure aborts the upload: nothing is
    /// committed and the service frees the parts.
    private func uploadInParts(namespace: String, bucket: String, name: String, file: String, size: Int64) async throws {
        let plan = MultipartPlan(size: size, partSize: settings.partSize)
        let uploadID = try await createMultipartUpload(namespace: namespace, bucket: bucket, name: name)
        logger.debug("multipart upload started", metadata: [LogKey.object: "\(name)", LogKey.parts: "\(plan.parts.count)"])
        do {
            let parallel = max(1, settings.http.connections)
            var committed: [OCIModels.CommitPart] = []
            try await withThrowingTaskGroup(of: OCIModels.CommitPart.self) { group in
                var pending = plan.parts[...]
                for _ in 0..<parallel {
                    guard let part = pending.popFirst() else { break }
                    group.addTask { OCIModels.CommitPart(partNum: part.number, etag: try await self.uploadPart(
                        namespace: namespace, bucket: bucket, name: name, uploadID: uploadID, part: part, file: file)) }
                }
                while let done = try await group.next() {
                    committed.append(done)
                    if let part = pending.popFirst() {
                        group.addTask { OCIModels.CommitPart(partNum: part.number, etag: try await self.uploadPart(
                            namespace: namespace, bucket: bucket, name: name, uploadID: uploadID, part: part, file: file)) }
                    }
                }
            }
            try await commitMultipartUpload(namespace: namespace, bucket: bucket, name: name, uploadID: uploadID,
                                            parts: committed.sorted { $0.partNum < $1.partNum })
        } catch {
            do {
                try await abortMultipartUpload(namespace: namespace, bucket: bucket, name: name, uploadID: uploadID)
            } catch let abortError {
                logger.warning("could not abort a failed multipart upload: the service removes it when it expires",
                               metadata: [LogKey.object: "\(name)", LogKey.upload: "\(uploadID)", LogKey.error: "\(abortError)"])
            }
            throw error
        }
    }

    // MARK: Sending

    private func send(_ operation: String, object: String, method: String, path: String, headers extra: [(String, String)] = [],
                      body: HTTPBody = .empty, contentMD5: Bool = false, json: [UInt8]? = nil, responseFile: String? = nil,
                      accepting: Set<Int> = []) async throws -> HTTPResponse {
        var attempt = 0
        while true {
            attempt += 1
            var headers: [String: String] = ["date": OCIRequestSigner.httpDate(Date()), "host": host]
            var requestBody = body
            if let json {
                // The calls other than PutObject and UploadPart sign their body.
                requestBody = .bytes(json)
                headers["content-type"] = "application/json"
                headers["content-length"] = String(json.count)
                headers["x-content-sha256"] = OCIRequestSigner.contentSHA256(json)
            } else if method == "PUT" || method == "POST" {
                headers["content-length"] = String(body.length)
            }
            for (name, value) in extra { headers[name] = value }
            let signed = try signer.sign(method: method, pathAndQuery: path, headers: headers, signsBody: json != nil)
            headers["authorization"] = signed.authorization
            headers["user-agent"] = "tributary"
            // curl sets Content-Length itself from the body size.
            let wire = headers.filter { $0.key != "content-length" }.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
            var request = HTTPRequest(method: method, endpoint: endpoint, pathAndQuery: path, headers: wire,
                                      body: requestBody, responseFile: responseFile)
            request.addsContentMD5 = contentMD5
            let retryReason: String
            do {
                let response = try await http.send(request)
                if (200..<300).contains(response.status) || accepting.contains(response.status) { return response }
                guard OCIRetryPolicy.isRetryable(status: response.status), attempt < settings.retry.attempts else {
                    throw serviceError(operation, object: object, response)
                }
                retryReason = "HTTP \(response.status)"
            } catch let failure as HTTPTransportError {
                guard attempt < settings.retry.attempts else { throw OCIError.unreachable(operation: operation, cause: failure, attempts: attempt) }
                retryReason = failure.message
            }
            let delay = settings.retry.backoff.delay(beforeRetry: attempt - 1, unit: Double.random(in: 0..<1))
            Counter(label: "tributary_oci_retries_total", dimensions: [("operation", operation)]).increment()
            logger.debug("OCI request will be retried", metadata: [
                LogKey.operation: "\(operation)", LogKey.object: "\(object)", LogKey.attempt: "\(attempt)", LogKey.reason: "\(retryReason)",
                LogKey.delaySeconds: "\(delay.seconds)",
            ])
            try await Task.sleep(for: delay)
        }
    }

    private func serviceError(_ operation: String, object: String, _ response: HTTPResponse) -> OCIError {
        let body = try? JSONDecoder().decode(OCIModels.ErrorBody.self, from: Data(response.body))
        return .service(operation: operation, object: object, status: response.status,
                        code: body?.code ?? "HTTP\(response.status)",
                        message: body?.message ?? String(decoding: response.body.prefix(200), as: UTF8.self),
                        requestID: response.header("opc-request-id"))
    }

    private func decode<T: Decodable>(_ type: T.Type, _ response: HTTPResponse, operation: String) throws -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(response.body))
        } catch {
            throw OCIError.malformedReply(operation: operation, detail: "\(error)")
        }
    }
}
