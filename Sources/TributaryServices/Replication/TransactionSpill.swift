import Foundation
import TributaryCore
import TributaryStorage

/// The changes of one streamed (still uncommitted) transaction, kept on local disk rather than in
/// memory, so a transaction of any size costs a file, not RAM. Records are the raw pgoutput
/// messages with their subtransaction id: `xid u32, length u32, payload`.
final class TransactionSpill {
    let topTransaction: UInt32
    let path: String
    private let output: BufferedFileOutput
    private(set) var abortedSubtransactions: Set<UInt32> = []
    private(set) var messages = 0

    init(topTransaction: UInt32, directory: String) throws {
        self.topTransaction = topTransaction
        path = "\(directory)/xid-\(topTransaction).spill"
        output = try BufferedFileOutput(creating: path)
    }

    func append(xid: UInt32, payload: ArraySlice<UInt8>) throws {
        var header = ByteWriter()
        header.uint32(xid)
        header.uint32(UInt32(payload.count))
        try output.append(header.bytes)
        try output.append(payload)
        messages += 1
    }

    func abortSubtransaction(_ xid: UInt32) { abortedSubtransactions.insert(xid) }

    /// Replays the surviving messages in order, Relation messages included, so each change meets
    /// the schema it was made under; changes of aborted subtransactions are skipped.
    func replay(_ body: (PgOutputMessage) async throws -> Void) async throws {
        try output.close()
        var decoder = PgOutputDecoder(inStream: true)
        let input = try FileInput(path: path)
        var pending: [UInt8] = []
        var offset = 0
        while true {
            let chunk = try input.read(upTo: 1 << 20)
            if chunk.isEmpty { break }
            pending.removeFirst(offset)
            offset = 0
            pending.append(contentsOf: chunk)
            while pending.count - offset >= 8 {
                var reader = ByteReader(pending, offset: offset)
                let xid = try reader.uint32()
                let length = Int(try reader.uint32())
                guard pending.count - offset - 8 >= length else { break }
                let payload = pending[(offset + 8)..<(offset + 8 + length)]
                offset += 8 + length
                if abortedSubtransactions.contains(xid) { continue }
                try await body(try decoder.decode(payload, at: .zero))
            }
        }
        guard offset == pending.count else { throw TributaryError(.corrupt, "spill file \(path) ends inside a record") }
    }

    func discard() {
        try? output.close()
        LocalFiles.remove(path)
    }
}
