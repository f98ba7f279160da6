/// Reads a `Decodable` struct from one row: each coding key names a column, each property's type
/// parses that column's text (`PostgresTextDecodable`), an optional property takes NULL. Row types
/// then only declare their columns (`enum CodingKeys: String, CodingKey { case confirmedFlushLSN =
/// "confirmed_flush_lsn" }`), and a column of the wrong type fails with its name.
struct QueryRowDecoder: Decoder {
    let row: QueryRow
    var codingPath: [any CodingKey] = []
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Columns<Key>(row: row))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw QueryDecodingError(column: "?", problem: "a row decodes into a struct with named columns only")
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw QueryDecodingError(column: "?", problem: "a row decodes into a struct with named columns only")
    }

    struct Columns<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let row: QueryRow
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { [] }

        func contains(_ key: Key) -> Bool { row.has(key.stringValue) }

        func decodeNil(forKey key: Key) throws -> Bool {
            guard row.has(key.stringValue) else { return true }
            return try row.decodeIfPresent(key.stringValue, as: String.self) == nil
        }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            guard let textual = type as? any PostgresTextDecodable.Type else {
                throw QueryDecodingError(column: key.stringValue, problem: "\(T.self) cannot be read from a column's text")
            }
            guard row.has(key.stringValue) else {
                throw QueryDecodingError(column: key.stringValue, problem: "not in the result")
            }
            return try row.decode(key.stringValue, as: textual) as! T
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            throw QueryDecodingError(column: key.stringValue, problem: "a column holds no nested record")
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            throw QueryDecodingError(column: key.stringValue, problem: "a column holds no list")
        }

        func superDecoder() throws -> any Decoder { QueryRowDecoder(row: row) }
        func superDecoder(forKey key: Key) throws -> any Decoder { QueryRowDecoder(row: row) }
    }
}
