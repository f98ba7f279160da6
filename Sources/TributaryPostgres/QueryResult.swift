import Foundation
import TributaryCore

/// Rows of a query in PostgreSQL's text form (NULL as nil). Callers read them as typed values,
/// through `QueryRow` or `decode(_:)` into a `Decodable` row struct: the text form is parsed here,
/// once, and a value that does not parse is an error, never a sentinel or a crash.
public struct QueryResult: Sendable {
    public var columns: [String]
    public var rows: [QueryRow]
    /// Rows affected, for INSERT/UPDATE/DELETE/COPY.
    public var affectedRows: Int

    public init(columns: [String], values: [[String?]], affectedRows: Int) {
        self.columns = columns
        let index = Dictionary(columns.enumerated().map { ($0.element, $0.offset) }, uniquingKeysWith: { first, _ in first })
        rows = values.map { QueryRow(index: index, values: $0) }
        self.affectedRows = affectedRows
    }

    public var isEmpty: Bool { rows.isEmpty }

    /// The first row, or nil.
    public var first: QueryRow? { rows.first }

    /// Every row as `Row`, its properties read from the columns its coding keys name.
    public func decode<Row: Decodable>(_ type: Row.Type) throws -> [Row] {
        try rows.map { try Row(from: QueryRowDecoder(row: $0)) }
    }

    /// The first row's first value, for `SELECT x`; an error when there is no row or it is NULL.
    public func scalar<Value: PostgresTextDecodable>(_ type: Value.Type) throws -> Value {
        guard let row = rows.first else { throw QueryDecodingError(column: columns.first ?? "?", problem: "no row") }
        return try row.decode(at: 0, as: type)
    }

    /// The first row's first value, nil when there is no row or it is NULL.
    public func optionalScalar<Value: PostgresTextDecodable>(_ type: Value.Type) throws -> Value? {
        try rows.first?.decodeIfPresent(at: 0, as: type)
    }

    /// The first column of every row.
    public func column<Value: PostgresTextDecodable>(_ type: Value.Type) throws -> [Value] {
        try rows.map { try $0.decode(at: 0, as: type) }
    }
}

/// One row of a result, read by column name (or position).
public struct QueryRow: Sendable {
    let index: [String: Int]

    /// Whether the result has a column of this name.
    public func has(_ column: String) -> Bool { index[column] != nil }
    /// The values in PostgreSQL's text form, NULL as nil.
    public let values: [String?]

    private func position(_ column: String) -> Int {
        guard let position = index[column] else { preconditionFailure("no column \(column) in the result") }
        return position
    }

    public func decode<Value: PostgresTextDecodable>(_ column: String, as type: Value.Type = Value.self) throws -> Value {
        try decode(at: position(column), as: type, name: column)
    }

    public func decodeIfPresent<Value: PostgresTextDecodable>(_ column: String, as type: Value.Type = Value.self) throws -> Value? {
        try decodeIfPresent(at: position(column), as: type, name: column)
    }

    public func decode<Value: PostgresTextDecodable>(at position: Int, as type: Value.Type = Value.self, name: String? = nil) throws -> Value {
        guard let value = try decodeIfPresent(at: position, as: type, name: name) else {
            throw QueryDecodingError(column: name ?? "#\(position)", problem: "NULL where a \(Value.self) was expected")
        }
        return value
    }

    public func decodeIfPresent<Value: PostgresTextDecodable>(at position: Int, as type: Value.Type = Value.self, name: String? = nil) throws -> Value? {
        guard let text = values[position] else { return nil }
        guard let value = Value(postgresText: text) else {
            throw QueryDecodingError(column: name ?? "#\(position)", problem: "\"\(text.prefix(40))\" is not a \(Value.self)")
        }
        return value
    }
}

/// A value in PostgreSQL's text output form (`t`/`f`, `42`, `0/16B3748`, `2026-11-25 10:12:14.76+00`).
public protocol PostgresTextDecodable {
    init?(postgresText text: String)
}

/// A column whose text did not read as the type asked for: the query and the reader disagree.
public struct QueryDecodingError: Error, CustomStringConvertible {
    public var column: String
    public var problem: String
    public var description: String { "column \(column): \(problem)" }

    public init(column: String, problem: String) {
        self.column = column
        self.problem = problem
    }
}

extension String: PostgresTextDecodable {
    public init?(postgresText text: String) { self = text }
}

extension Bool: PostgresTextDecodable {
    public init?(postgresText text: String) {
        switch text {
        case "t": self = true
        case "f": self = false
        default: return nil
        }
    }
}

extension Int: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Int64: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension UInt32: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Double: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension LSN: PostgresTextDecodable {
    public init?(postgresText text: String) { self.init(text) }
}

extension Date: PostgresTextDecodable {
    /// `timestamptz` as a session pinned to ISO dates and UTC prints it: `2026-11-25 10:12:14.760203+00`.
    public init?(postgresText text: String) {
        guard let date = ManifestCoding.parseTimestamp(text.replacingOccurrences(of: " ", with: "T")
            .replacingOccurrences(of: "+00", with: "Z")) else { return nil }
        self = date
    }
}
