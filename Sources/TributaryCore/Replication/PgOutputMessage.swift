/// One message of the `pgoutput` logical decoding plugin, protocol versions 1 and 2
/// (PostgreSQL's src/backend/replication/logical/proto.c). Byte layouts are beside each decoder.
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

    public struct Begin: Sendable, Equatable {
        /// LSN of the commit record: the transaction's position.
        public var finalLSN: LSN
        public var commitTime: Int64
        public var xid: UInt32

        public init(finalLSN: LSN, commitTime: Int64, xid: UInt32) {
            self.finalLSN = finalLSN
            self.commitTime = commitTime
            self.xid = xid
        }
    }

    public struct Commit: Sendable, Equatable {
        public var flags: UInt8
        public var commitLSN: LSN
        /// End of the commit record: where a restart after this transaction begins.
        public var endLSN: LSN
        public var commitTime: Int64

        public init(flags: UInt8, commitLSN: LSN, endLSN: LSN, commitTime: Int64) {
            self.flags = flags
            self.commitLSN = commitLSN
            self.endLSN = endLSN
            self.commitTime = commitTime
        }
    }

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
    }

    public enum TupleValue: Sendable, Equatable {
        case null
        /// A TOASTed value the change did not touch: the value is not sent and must be kept.
        case unchanged
        case text([UInt8])
        case binary([UInt8])
    }
}

/// Decodes pgoutput payloads. Stateful only in one respect: inside a Stream Start … Stream Stop
/// block, changes carry the (sub)transaction id after their type byte.
public struct PgOutputDecoder: Sendable {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var messageType: Character
        public var lsn: LSN
        public var reason: String

        public var description: String {
            "cannot decode pgoutput message '\(messageType)' at \(lsn): \(reason)"
        }
    }

    public private(set) var inStream: Bool

    /// - Parameter inStream: true to decode messages spilled from inside a stream block.
    public init(inStream: Bool = false) { self.inStream = inStream }

    /// - Parameter lsn: where the message starts in the WAL, for error messages.
    public mutating func decode(_ bytes: [UInt8], at lsn: LSN) throws -> PgOutputMessage {
        guard let first = bytes.first else {
            throw Failure(messageType: "?", lsn: lsn, reason: "empty message")
        }
        let type = Character(Unicode.Scalar(first))
        var reader = ByteReader(bytes, offset: 1)
        do {
            let message = try decode(type: type, &reader)
            guard reader.remaining == 0 else {
                throw Failure(messageType: type, lsn: lsn, reason: "\(reader.remaining) bytes left over: the layout is not what this decoder knows")
            }
            return message
        } catch let underflow as ByteReader.Underflow {
            throw Failure(messageType: type, lsn: lsn, reason: "message ends early (needed \(underflow.needed) more bytes, \(underflow.remaining) left)")
        } catch let failure as Failure {
            throw Failure(messageType: type, lsn: lsn, reason: failure.reason)
        }
    }

    private mutating func decode(type: Character, _ reader: inout ByteReader) throws -> PgOutputMessage {
        switch type {
        case "B":
            // Begin: final LSN int64, commit time int64, xid int32
            return .begin(.init(finalLSN: try reader.lsn(), commitTime: try reader.int64(), xid: try reader.uint32()))
        case "C":
            // Commit: flags int8, commit LSN int64, end LSN int64, commit time int64
            return .commit(try Self.commit(&reader))
        case "O":
            // Origin: LSN int64, name string
            return .origin(lsn: try reader.lsn(), name: try reader.cString())
        case "R":
            // Relation: [xid], oid int32, namespace string ("" = pg_catalog), name string, replica identity int8,
            // column count int16, per column: flags int8 (1 = key), name string, type oid int32, typmod int32
            let xid = try streamXid(&reader)
            let oid = try reader.uint32()
            let namespace = try reader.cString()
            let name = try reader.cString()
            let identity = try reader.uint8()
            let count = Int(try reader.int16())
            var columns: [PgOutputMessage.Relation.Column] = []
            columns.reserveCapacity(count)
            for _ in 0..<count {
                columns.append(.init(isKey: try reader.uint8() & 1 == 1, name: try reader.cString(),
                                     typeOid: try reader.uint32(), typeModifier: try reader.int32()))
            }
            return .relation(.init(xid: xid, oid: oid, namespace: namespace.isEmpty ? "pg_catalog" : namespace,
                                   name: name, replicaIdentity: identity, columns: columns))
        case "Y":
            // Type: [xid], oid int32, namespace string, name string
            let xid = try streamXid(&reader)
            let oid = try reader.uint32()
            let namespace = try reader.cString()
            return .type(xid: xid, oid: oid, namespace: namespace.isEmpty ? "pg_catalog" : namespace, name: try reader.cString())
        case "I":
            // Insert: [xid], relation oid int32, 'N', tuple
            let xid = try streamXid(&reader)
            let relation = try reader.uint32()
            try expect(&reader, "N")
            return .insert(xid: xid, relation: relation, new: try Self.tuple(&reader))
        case "U":
            // Update: [xid], relation oid int32, optional ('K' | 'O') tuple, 'N' tuple
            let xid = try streamXid(&reader)
            let relation = try reader.uint32()
            var old: PgOutputMessage.OldTuple?
            var marker = try reader.uint8()
            if marker == UInt8(ascii: "K") || marker == UInt8(ascii: "O") {
                let values = try Self.tuple(&reader)
                old = marker == UInt8(ascii: "K") ? .key(values) : .full(values)
                marker = try reader.uint8()
            }
            guard marker == UInt8(ascii: "N") else { throw reason("expected 'N' before the new tuple, found \(marker)") }
            return .update(xid: xid, relation: relation, old: old, new: try Self.tuple(&reader))
        case "D":
            // Delete: [xid], relation oid int32, ('K' | 'O') tuple
            let xid = try streamXid(&reader)
            let relation = try reader.uint32()
            let marker = try reader.uint8()
            let values = try Self.tuple(&reader)
            switch marker {
            case UInt8(ascii: "K"): return .delete(xid: xid, relation: relation, old: .key(values))
            case UInt8(ascii: "O"): return .delete(xid: xid, relation: relation, old: .full(values))
            default: throw reason("expected 'K' or 'O' in a delete, found \(marker)")
            }
        case "T":
            // Truncate: [xid], relation count int32, options int8 (1 cascade, 2 restart identity), oids int32…
            let xid = try streamXid(&reader)
            let count = Int(try reader.int32())
            let options = try reader.uint8()
            var relations: [UInt32] = []
            for _ in 0..<count { relations.append(try reader.uint32()) }
            return .truncate(xid: xid, relations: relations, cascade: options & 1 != 0, restartIdentity: options & 2 != 0)
        case "M":
            // Message: [xid], flags int8 (1 = transactional), LSN int64, prefix string, length int32, content
            let xid = try streamXid(&reader)
            let flags = try reader.uint8()
            let lsn = try reader.lsn()
            let prefix = try reader.cString()
            let length = Int(try reader.int32())
            return .message(xid: xid, transactional: flags & 1 != 0, lsn: lsn, prefix: prefix, content: Array(try reader.bytes(length)))
        case "S":
            // Stream Start: xid int32, first segment int8
            inStream = true
            return .streamStart(xid: try reader.uint32(), firstSegment: try reader.uint8() == 1)
        case "E":
            // Stream Stop: nothing
            inStream = false
            return .streamStop
        case "c":
            // Stream Commit: xid int32, flags int8, commit LSN int64, end LSN int64, commit time int64
            return .streamCommit(xid: try reader.uint32(), commit: try Self.commit(&reader))
        case "A":
            // Stream Abort (protocol 2, PostgreSQL 14/15): xid int32, subtransaction xid int32
            return .streamAbort(xid: try reader.uint32(), subtransaction: try reader.uint32())
        default:
            throw reason("unknown message type")
        }
    }

    private func streamXid(_ reader: inout ByteReader) throws -> UInt32? {
        inStream ? try reader.uint32() : nil
    }

    private func expect(_ reader: inout ByteReader, _ marker: Character) throws {
        let byte = try reader.uint8()
        guard byte == marker.asciiValue! else { throw reason("expected '\(marker)', found \(byte)") }
    }

    private func reason(_ text: String) -> Failure { Failure(messageType: "?", lsn: .zero, reason: text) }

    private static func commit(_ reader: inout ByteReader) throws -> PgOutputMessage.Commit {
        .init(flags: try reader.uint8(), commitLSN: try reader.lsn(), endLSN: try reader.lsn(), commitTime: try reader.int64())
    }

    /// Tuple: column count int16, per column: 'n' | 'u' | 't' length int32 bytes | 'b' length int32 bytes
    private static func tuple(_ reader: inout ByteReader) throws -> [PgOutputMessage.TupleValue] {
        let count = Int(try reader.int16())
        var values: [PgOutputMessage.TupleValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count {
            let kind = try reader.uint8()
            switch kind {
            case UInt8(ascii: "n"): values.append(.null)
            case UInt8(ascii: "u"): values.append(.unchanged)
            case UInt8(ascii: "t"): values.append(.text(Array(try reader.bytes(Int(try reader.int32())))))
            case UInt8(ascii: "b"): values.append(.binary(Array(try reader.bytes(Int(try reader.int32())))))
            default:
                throw Failure(messageType: "?", lsn: .zero, reason: "unknown tuple value kind \(kind)")
            }
        }
        return values
    }
}
