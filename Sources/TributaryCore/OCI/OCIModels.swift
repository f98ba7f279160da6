/// Object Storage request and response bodies (JSON, camelCase as the API spells it).
public enum OCIModels {
    public struct ObjectSummary: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int?
        public init(name: String, size: Int?) {
            self.name = name
            self.size = size
        }
    }

    public struct ListObjects: Codable, Sendable, Equatable {
        public var objects: [ObjectSummary]
        /// Present while more objects follow: the `start` of the next page.
        public var nextStartWith: String?
        public init(objects: [ObjectSummary], nextStartWith: String?) {
            self.objects = objects
            self.nextStartWith = nextStartWith
        }
    }

    public struct CreateMultipartUpload: Codable, Sendable, Equatable {
        public var object: String
        public init(object: String) { self.object = object }
    }

    public struct MultipartUpload: Codable, Sendable, Equatable {
        public var uploadId: String
        public var object: String
    }

    public struct CommitPart: Codable, Sendable, Equatable {
        public var partNum: Int
        public var etag: String
        public init(partNum: Int, etag: String) {
            self.partNum = partNum
            self.etag = etag
        }
    }

    public struct CommitMultipartUpload: Codable, Sendable, Equatable {
        public var partsToCommit: [CommitPart]
        public init(partsToCommit: [CommitPart]) { self.partsToCommit = partsToCommit }
    }

    /// What OCI answers on an error: `{"code": "…", "message": "…"}`.
    public struct ErrorBody: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
    }
}

/// The byte ranges of a multipart upload: parts of `partSize`, the last one shorter.
public struct MultipartPlan: Sendable, Equatable {
    public struct Part: Sendable, Equatable {
        /// 1-based, as OCI numbers parts.
        public var number: Int
        public var offset: Int64
        public var length: Int64
    }

    public let parts: [Part]

    public init(size: Int64, partSize: Int64) {
        precondition(partSize > 0)
        var parts: [Part] = []
        var offset: Int64 = 0
        while offset < size || parts.isEmpty {
            let length = min(partSize, size - offset)
            parts.append(Part(number: parts.count + 1, offset: offset, length: length))
            offset += length
            if length == 0 { break }
        }
        self.parts = parts
    }
}

/// When and how long to wait before trying an Object Storage request again.
public struct OCIRetryPolicy: Sendable, Equatable {
    /// Attempts in all, the first one included.
    public var attempts: Int
    public var backoff: Backoff

    public init(attempts: Int = 8, baseDelaySeconds: Double = 0.1, maxDelaySeconds: Double = 10) {
        self.attempts = max(1, attempts)
        backoff = Backoff(initialSeconds: baseDelaySeconds, maximumSeconds: maxDelaySeconds, jitter: true)
    }

    /// 429 (throttled) and 5xx are worth another try, except 501: the call is not implemented and
    /// never will be on a second try.
    public static func isRetryable(status: Int) -> Bool {
        status == 429 || (status >= 500 && status != 501)
    }
}
