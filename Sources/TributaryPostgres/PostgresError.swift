import Foundation

/// An error from PostgreSQL or libpq, with the server's fields so callers can decide on retry
/// (SQLSTATE class 08 and 40 are transient) and operators see message, detail and hint.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// The connection could not be opened (unreachable, authentication, no such database).
        case connectionFailed
        /// The server rejected a statement.
        case statementFailed
        /// The connection broke while in use.
        case connectionLost
        /// The server said something the adapter does not expect.
        case protocolViolation
    }

    public var kind: Kind
    /// Where it happened, for the operator: "qvp (127.0.0.1:5432/qvp)".
    public var endpoint: String
    public var sqlState: String?
    public var message: String
    public var detail: String?
    public var hint: String?

    public init(kind: Kind, endpoint: String, sqlState: String? = nil, message: String, detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.endpoint = endpoint
        self.sqlState = sqlState
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    /// Connection trouble, serialization failures and deadlocks: worth retrying.
    public var isTransient: Bool {
        if kind == .connectionLost { return true }
        guard let sqlState else { return false }
        return sqlState.hasPrefix("08") || sqlState == "40001" || sqlState == "40P01" || sqlState == "57P01"
    }

    /// A data exception or an integrity violation: its detail may quote row values (`Key (id)=(42)
    /// already exists`, `Failing row contains (…)`), which logs and terminals must not show.
    public var detailMayHoldData: Bool { sqlState.map { $0.hasPrefix("22") || $0.hasPrefix("23") } ?? false }

    /// One line: libpq's multi-line messages are folded. A detail that may hold row values is left
    /// out (`fullDescription` has it, for debug-level logs).
    public var description: String { describe(withData: false) }

    /// With every detail, row values included: for debug-level logs only.
    public var fullDescription: String { describe(withData: true) }

    private func describe(withData: Bool) -> String {
        var parts = ["\(endpoint): \(Self.oneLine(message))"]
        if let detail {
            parts.append(withData || !detailMayHoldData ? "detail: \(Self.oneLine(detail))"
                                                        : "detail withheld: it may hold row values (--log-level debug shows it)")
        }
        if let hint { parts.append("hint: \(Self.oneLine(hint))") }
        return parts.joined(separator: "; ")
    }

    static func oneLine(_ text: String) -> String {
        text.split(whereSeparator: \.isNewline)
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
    }
}

extension PostgresError {
    /// SQLSTATEs callers tell apart.
    public static let undefinedTable = "42P01"
    public static let undefinedColumn = "42703"
    /// The object is in use: a replication slot another walsender holds (START_REPLICATION).
    public static let objectInUse = "55006"
}
