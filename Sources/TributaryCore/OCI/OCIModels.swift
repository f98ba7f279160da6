/// Object Storage request and response bodies (JSON, camelCase as the API spells it).
public enum OCIModels {
    public struct ObjectSummary: Codable, Sendable, Equatable {
        public var name: String
        public var size: Int?
        /// Base64 MD5, or `<base64>-<parts>` for a multipart object (when listed with `md5`).
        public var md5: String?
        public var etag: String?
        public var timeModified: String?

        public init(name: String, size: Int?, md5: String? = nil, etag: String? = nil, timeModified: String? = nil) {
            self.name = name
            self.size = size
            self.md5 = md5
            self.etag = etag
            self.timeModified = timeModified
        }
    }

    /// CopyObject's body: the source object, and where its copy goes.
    public struct CopyObjectDetails: Codable, Sendable, Equatable {
        public var sourceObjectName: String
        /// The copy fails (rather than copies something else) if the source changed since it was listed.
        public var sourceObjectIfMatchETag: String?
        public var destinationRegion: String
        public var destinationNamespace: String
        public var destinationBucket: String
        public var destinationObjectName: String

        public init(sourceObjectName: String, sourceObjectIfMatchETag: String?, destinationRegion: String,
                    destinationNamespace: String, destinationBucket: String, destinationObjectName: String) {
            self.sourceObjectName = sourceObjectName
            self.sourceObjectIfMatchETag = sourceObjectIfMatchETag
            self.destinationRegion = destinationRegion
            self.destinationNamespace = destinationNamespace
            self.destinationBucket = destinationBucket
            self.destinationObjectName = destinationObjectName
        }
    }

    /// A work request (CopyObject's progress).
    public struct WorkRequest: Codable, Sendable, Equatable {
        public var id: String
        /// ACCEPTED, IN_PROGRESS, FAILED, COMPLETED, CANCELING, CANCELED.
        public var status: String
        public var percentComplete: Double?
    }

    public struct WorkRequestError: Codable, Sendable, Equatable {
        public var code: String
        public var message: String
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

    public init(attempts: Int = 8, baseDelay: Duration = .milliseconds(100), maximumDelay: Duration = .seconds(10)) {
        self.attempts = max(1, attempts)
        backoff = Backoff(initial: baseDelay, maximum: maximumDelay, jitter: true)
    }

    /// 429 (throttled) and 5xx are worth another try, except 501: the call is not implemented and
    /// never will be on a second try.
    public static func isRetryable(status: Int) -> Bool {
        status == 429 || (status >= 500 && status != 501)
    }
}
