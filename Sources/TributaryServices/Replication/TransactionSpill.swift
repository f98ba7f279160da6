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

    func append(xid: UInt32, payload: ByteSlice) throws {
        var header = ByteWriter()
        header.uint32(xid)
        header.uint32(UInt32(payload.count))
        try output.append(header.bytes)
        try payload.withUnsafeBytes { try output.append($0) }
        messages += 1
    }

    func abortSubtransaction(_ xid: UInt32) { abortedSubtransactions.insert(xid) }

    /// Replays the surviving messages in order, Relation messages included, so each change meets
    /// the schema it was made under; changes of aborted subtransactions are skipped. Each message
    /// is read straight into memory of its own, which its values then slice: a message holding a
    /// value of hundreds of megabytes is in memory once. Runs in the caller's isolation (the
    /// replication connection's thread): its file reads block.
    func replay(isolation: isolated (any Actor)? = #isolation, _ body: (PgOutputMessage) async throws -> Void) async throws {
        try output.close()
        var decoder = PgOutputDecoder(inStream: true)
        let input = try FileInput(path: path)
        let header = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 4)
        defer { header.deallocate() }
        while try read(input, into: header, allowingEnd: true) {
            var reader = ByteReader(Array(header))
            let xid = try reader.uint32()
            let length = Int(try reader.uint32())
            let message = UnsafeMutableRawBufferPointer.allocate(byteCount: length, alignment: 1)
            let storage = ByteStorage(adopting: UnsafeRawBufferPointer(message)) { $0.deallocate() }
            _ = try read(input, into: message, allowingEnd: false)
            if abortedSubtransactions.contains(xid) { continue }
            try await body(try decoder.decode(ByteSlice(storage), at: .zero))
        }
    }

    /// Fills `buffer` from `input`; false at the end of the file before its first byte, if allowed.
    private func read(_ input: FileInput, into buffer: UnsafeMutableRawBufferPointer, allowingEnd: Bool) throws -> Bool {
        var filled = 0
        while filled < buffer.count {
            let count = try input.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
            if count == 0 {
                if filled == 0 && allowingEnd { return false }
                throw TributaryError(.corrupt, "spill file \(path) ends inside a record")
            }
            filled += count
        }
        return true
    }

    func discard() {
        try? output.close()
        LocalFiles.remove(path)
    }
}
