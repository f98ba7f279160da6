/// The CopyBoth messages of a replication connection around the plugin's payload
/// (PostgreSQL docs, "Streaming Replication Protocol").
public enum ReplicationMessage: Sendable, Equatable {
    /// 'w': start LSN int64, end-of-WAL int64, send time int64, payload.
    case xLogData(start: LSN, walEnd: LSN, sendTime: Int64, payload: ByteSlice)
    /// 'k': end-of-WAL int64, send time int64, reply requested int8.
    case keepalive(walEnd: LSN, sendTime: Int64, replyRequested: Bool)

    public struct Unknown: Error, CustomStringConvertible {
        public let type: UInt8
        public var description: String { "unknown replication message type \(type)" }
    }

    public static func decode(_ bytes: [UInt8]) throws -> ReplicationMessage {
        try decode(ByteSlice(copying: bytes))
    }

    /// Decodes a message in place: the payload is a slice of `bytes`.
    public static func decode(_ bytes: ByteSlice) throws -> ReplicationMessage {
        var reader = ByteReader(bytes)
        switch try reader.uint8() {
        case UInt8(ascii: "w"):
            let start = try reader.lsn(), end = try reader.lsn(), time = try reader.int64()
            return .xLogData(start: start, walEnd: end, sendTime: time, payload: bytes[reader.offset...])
        case UInt8(ascii: "k"):
            return .keepalive(walEnd: try reader.lsn(), sendTime: try reader.int64(), replyRequested: try reader.uint8() != 0)
        case let type:
            throw Unknown(type: type)
        }
    }

    /// 'r' Standby Status Update: written, flushed and applied LSN, client time, reply requested.
    /// All three are the durable position: a batch's end only once its manifest is in the staging
    /// store (flushed becomes the slot's confirmed_flush_lsn). Reporting less than was received as
    /// written also makes a caught-up walsender send keepalives, whose position lets an idle slot advance.
    public static func standbyStatus(durable: LSN, clientTime: Int64, replyRequested: Bool = false) -> [UInt8] {
        var writer = ByteWriter()
        writer.uint8(UInt8(ascii: "r"))
        writer.lsn(durable)
        writer.lsn(durable)
        writer.lsn(durable)
        writer.int64(clientTime)
        writer.uint8(replyRequested ? 1 : 0)
        return writer.bytes
    }
}
