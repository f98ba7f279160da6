/// An Object Storage call that failed for good, with what OCI said.
public enum OCIError: Error, Sendable, CustomStringConvertible {
    /// The service answered with an error status.
    case service(operation: String, object: String, status: Int, code: String, message: String, requestID: String?)
    /// No answer, even after retries.
    case unreachable(operation: String, cause: HTTPTransportError, attempts: Int)
    /// A reply that does not parse as the API documents it.
    case malformedReply(operation: String, detail: String)

    public var description: String {
        switch self {
        case .service(let operation, let object, let status, let code, let message, let requestID):
            let hint: String
            switch (status, code) {
            case (401, _): hint = ": check the profile's user, tenancy, fingerprint and key_file (and the machine's clock)"
            case (404, "BucketNotFound"), (404, "NamespaceNotFound"): hint = ": check the namespace and bucket of the staging URL and the policy granting access"
            case (403, _): hint = ": the user lacks a policy for this bucket"
            default: hint = ""
            }
            return "OCI \(operation) \(object) failed: \(status) \(code): \(message)"
                + (requestID.map { " (opc-request-id \($0))" } ?? "") + hint
        case .unreachable(let operation, let cause, let attempts):
            return "OCI \(operation): \(cause) (after \(attempts) attempt\(attempts == 1 ? "" : "s")): check the endpoint or region and the network"
        case .malformedReply(let operation, let detail):
            return "OCI \(operation): unexpected reply: \(detail)"
        }
    }

    /// The service was unreachable or overloaded after every attempt: a later try may well work.
    public var isTransient: Bool {
        switch self {
        case .unreachable: return true
        case .service(_, _, let status, _, _, _): return status == 429 || status >= 500
        case .malformedReply: return false
        }
    }

    public var status: Int? {
        if case .service(_, _, let status, _, _, _) = self { return status }
        return nil
    }
}
