/// One message of the `pgoutput` logical decoding plugin, protocol versions 1 and 2
/// (PostgreSQL's src/backend/replication/logical/proto.c). Each payload decodes itself, its byte
/// layout beside it; `PgOutputDecoder` frames them and picks the decoder by the type byte.
/// `[xid]` marks the transaction id that messages carry only inside a stream block.
public enum PgOutputMessage: Sendable, Equatable {
    case begin(Begin)
    case commit(Commit)
    case origin(lsn: LSN, name: String)
    case relation(Relation)
    case type(xid: UInt32?, oid: UInt32, namespace: String, name: String)
    case insert(xid: UInt32?, relation: UInt32, new: [TupleValue])
    case update(xid: UInt32?, relation: UInt32, old: OldTuple?, new: [TupleValue])
    case delete(xid: UInt32?, relation: UInt32, old: OldTuple)
    case truncate(xid: UInt32?, relations: [UInt32], cascade: Bool, restartIdentity: Bool)
    case message(xid: UInt32?, transactional: Bool, lsn: LSN, prefix: String, content: [UInt8])
    case streamStart(xid: UInt32, firstSegment: Bool)
    case streamStop
    case streamCommit(xid: UInt32, commit: Commit)
    case streamAbort(xid: UInt32, subtransaction: UInt32)

    /// 'B' Begin: final LSN int64, commit time int64, xid int32.
    public struct Begin: Sendable, Equatable {
        /// LSN of the commit record: the transaction's position.
        public var finalLSN: LSN
        public var commitTime: Int64
        public var xid: UInt32

        static func decode(_ reader: inout ByteReader) throws -> Begin {
            Begin(finalLSN: try reader.lsn(), commitTime: try reader.int64(), xid: try reader.uint32())
        }
    }

    /// 'C' Commit (and the tail of 'c' Stream Commit): flags int8, commit LSN int64, end LSN int64,
    /// commit time int64.
    public struct Commit: Sendable, Equatable {
        public var flags: UInt8
        public var commitLSN: LSN
        /// End of the commit record: where a restart after this transaction begins.
        public var endLSN: LSN
        public var commitTime: Int64

        static func decode(_ reader: inout ByteReader) throws -> Commit {
            Commit(flags: try reader.uint8(), commitLSN: try reader.lsn(), endLSN: try reader.lsn(), commitTime: try reader.int64())
        }
    }

    /// 'R' Relation: [xid], oid int32, namespace string ("" = pg_catalog), name string, replica
    /// identity int8, column count int16, per column: flags int8 (1 = key), name string, type oid
    /// int32, typmod int32.
    public struct Relation: Sendable, Equatable {
        public struct Column: Sendable, Equatable {
            public var isKey: Bool
            public var name: String
            public var typeOid: UInt32
            public var typeModifier: Int32
        }

        public var xid: UInt32?
        public var oid: UInt32
        public var namespace: String
        public var name: String
        /// `d` default, `n` nothing, `f` full, `i` index.
        public var replicaIdentity: UInt8
        public var columns: [Column]

        static func decode(_ reader: inout ByteReader, xid: UInt32?) throws -> Relation {
            let oid = try reader.uint32()
            let namespace = try reader.cString()
            let name = try reader.cString()
            let identity = try reader.uint8()
            let count = Int(try reader.int16())
            var columns: [Column] = []
            columns.reserveCapacity(count)
            for _ in 0..<count {
                columns.append(Column(isKey: try reader.uint8() & 1 == 1, name: try reader.cString(),
                                      typeOid: try reader.uint32(), typeModifier: try reader.int32()))
            }
            return Relation(xid: xid, oid: oid, namespace: namespace.isEmpty ? "pg_catalog" : namespace, name: name,
                            replicaIdentity: identity, columns: columns)
        }
    }

    /// The old row of an update or delete: its replica-identity key (`K`) or the full row (`O`).
    public enum OldTuple: Sendable, Equatable {
        case key([TupleValue])
        case full([TupleValue])

        public var values: [TupleValue] {
            switch self {
            case .key(let values), .full(let values): return values
            }
        }

        /// A tuple after its marker byte `K` or `O`; nil for any other marker.
        static func decode(marker: UInt8, _ reader: inout ByteReader) throws -> OldTuple? {
            switch marker {
            case UInt8(ascii: "K"): return .key(try TupleValue.decodeTuple(&reader))
            case UInt8(ascii: "O"): return .full(try TupleValue.decodeTuple(&reader))
            default: return nil
            }
        }
    }

    public enum TupleValue: Sendable, Equatable {
        case null
        /// A TOASTed value the change did not touch: the value is not sent and must be kept.
        case unchanged
        /// The value's bytes, a slice of the message: a value of hundreds of megabytes is not
        /// copied out of the message it came in.
        case text(ByteSlice)
        case binary(ByteSlice)

        /// Tuple: column count int16, per column: 'n' | 'u' | 't' length int32 bytes | 'b' length int32 bytes.
        static func decodeTuple(_ reader: inout ByteReader) throws -> [TupleValue] {
            let count = Int(try reader.int16())
            var values: [TupleValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count {
                let kind = try reader.uint8()
                switch kind {
                case UInt8(ascii: "n"): values.append(.null)
                case UInt8(ascii: "u"): values.append(.unchanged)
                case UInt8(ascii: "t"): values.append(.text(try reader.bytes(Int(try reader.int32()))))
                case UInt8(ascii: "b"): values.append(.binary(try reader.bytes(Int(try reader.int32()))))
                default: throw PgOutputDecoder.Failure(messageType: "?", lsn: .zero, reason: "unknown tuple value kind \(kind)")
                }
            }
            return values
        }
    }
}

// MARK: The messages without a payload type of their own

extension PgOutputMessage {
    /// 'O' Origin: LSN int64, name string.
    static func decodeOrigin(_ reader: inout ByteReader) throws -> PgOutputMessage {
        .origin(lsn: try reader.lsn(), name: try reader.cString())
    }

    /// 'Y' Type: [xid], oid int32, namespace string, name string.
    static func decodeType(_ reader: inout ByteReader, xid: UInt32?) throws -> PgOutputMessage {
        let oid = try reader.uint32()
        let namespace = try reader.cString()
        return .type(xid: xid, oid: oid, namespace: namespace.isEmpty ? "pg_catalog" : namespace, name: try reader.cString())
    }

    /// 'I' Insert: [xid], relation oid int32, 'N', tuple.
    static func decodeInsert(_ reader: inout ByteReader, xid: UInt32?) throws -> PgOutputMessage {
        let relation = try reader.uint32()
        let marker = try reader.uint8()
        guard marker == UInt8(ascii: "N") else { throw PgOutputDecoder.reason("expected 'N', found \(marker)") }
        return .insert(xid: xid, relation: relation, new: try TupleValue.decodeTuple(&reader))
    }

    /// 'U' Update: [xid], relation oid int32, optional ('K' | 'O') tuple, 'N' tuple.
    static func decodeUpdate(_ reader: inout ByteReader, xid: UInt32?) throws -> PgOutputMessage {
        let relation = try reader.uint32()
        var marker = try reader.uint8()
        let old = try OldTuple.decode(marker: marker, &reader)
        if old != nil { marker = try reader.uint8() }
        guard marker == UInt8(ascii: "N") else { throw PgOutputDecoder.reason("expected 'N' before the new tuple, found \(marker)") }
        return .update(xid: xid, relation: relation, old: old, new: try TupleValue.decodeTuple(&reader))
    }

    /// 'D' Delete: [xid], relation oid int32, ('K' | 'O') tuple.
    static func decodeDelete(_ reader: inout ByteReader, xid: UInt32?) throws -> PgOutputMessage {
        let relation = try reader.uint32()
        let marker = try reader.uint8()
        guard let old = try OldTuple.decode(marker: marker, &reader) else {
            throw PgOutputDecoder.reason("expected 'K' or 'O' in a delete, found \(marker)")
        }
        return .delete(xid: xid, relation: relation, old: old)
    }

    /// 'T' Truncate: [xid], relation count int32, options int8 (1 cascade, 2 restart identity), oids int32….
    static func decodeTruncate(_ reader: inout ByteReader, xid: UInt32?) throws -> PgOutputMessage {
        let count = Int(try reader.int32())
        let options = try reader.uint8()
        var relations: [UInt32] = []
        for _ in 0..<count { relations.append(try reader.uint32()) }
        return .truncate(xid: xid, relations: relations, cascade: options & 1 != 0, restartIdentity: options & 2 != 0)
    }

    /// 'M' Message: [xid], flags int8 (1 = transactional), LSN int64, prefix string, length int32, content.
    static func decodeMessage(_ reader: inout ByteReader, xid: UInt32?) throws -> PgOutputMessage {
        let flags = try reader.uint8()
        let lsn = try reader.lsn()
        let prefix = try reader.cString()
        let length = Int(try reader.int32())
        return .message(xid: xid, transactional: flags & 1 != 0, lsn: lsn, prefix: prefix, content: Array(try reader.bytes(length)))
    }

    /// 'S' Stream Start: xid int32, first segment int8.
    static func decodeStreamStart(_ reader: inout ByteReader) throws -> PgOutputMessage {
        .streamStart(xid: try reader.uint32(), firstSegment: try reader.uint8() == 1)
    }

    /// 'c' Stream Commit: xid int32, then a commit's layout.
    static func decodeStreamCommit(_ reader: inout ByteReader) throws -> PgOutputMessage {
        .streamCommit(xid: try reader.uint32(), commit: try Commit.decode(&reader))
    }

    /// 'A' Stream Abort (protocol 2, PostgreSQL 14/15): xid int32, subtransaction xid int32.
    static func decodeStreamAbort(_ reader: inout ByteReader) throws -> PgOutputMessage {
        .streamAbort(xid: try reader.uint32(), subtransaction: try reader.uint32())
    }
}

extension PgOutputMessage {
    public var isTruncate: Bool {
        if case .truncate = self { return true }
        return false
    }
}
