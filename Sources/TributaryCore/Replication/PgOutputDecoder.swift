/// Frames pgoutput payloads: picks each message's decoder by its type byte and checks that it
/// consumed the whole message. Stateful only in one respect: inside a Stream Start … Stream Stop
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
        try decode(ByteSlice(copying: bytes), at: lsn)
    }

    /// Decodes a message in place: its values are slices of `bytes`.
    public mutating func decode(_ bytes: ByteSlice, at lsn: LSN) throws -> PgOutputMessage {
        guard let first = bytes.first else {
            throw Failure(messageType: "?", lsn: lsn, reason: "empty message")
        }
        let type = Character(Unicode.Scalar(first))
        var reader = ByteReader(bytes.dropFirst())
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

    /// Messages that carry the transaction id inside a stream block.
    private static let streamable: Set<Character> = ["R", "Y", "I", "U", "D", "T", "M"]

    private mutating func decode(type: Character, _ reader: inout ByteReader) throws -> PgOutputMessage {
        let xid = inStream && Self.streamable.contains(type) ? try reader.uint32() : nil
        switch type {
        case "B": return .begin(try .decode(&reader))
        case "C": return .commit(try .decode(&reader))
        case "O": return try .decodeOrigin(&reader)
        case "R": return .relation(try .decode(&reader, xid: xid))
        case "Y": return try .decodeType(&reader, xid: xid)
        case "I": return try .decodeInsert(&reader, xid: xid)
        case "U": return try .decodeUpdate(&reader, xid: xid)
        case "D": return try .decodeDelete(&reader, xid: xid)
        case "T": return try .decodeTruncate(&reader, xid: xid)
        case "M": return try .decodeMessage(&reader, xid: xid)
        case "S":
            inStream = true
            return try .decodeStreamStart(&reader)
        case "E":
            // Stream Stop: nothing
            inStream = false
            return .streamStop
        case "c": return try .decodeStreamCommit(&reader)
        case "A": return try .decodeStreamAbort(&reader)
        default: throw Self.reason("unknown message type")
        }
    }

    /// A failure whose type and LSN `decode` fills in.
    static func reason(_ text: String) -> Failure { Failure(messageType: "?", lsn: .zero, reason: text) }
}
