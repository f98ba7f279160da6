import Foundation
import Testing
@testable import TributaryCore

/// The decoder against bytes a real PostgreSQL 15 sent (deploy/tools/capture-pgoutput-fixtures.sh).
@Suite struct PgOutputDecoderTests {
    static func fixture() throws -> [(lsn: LSN, bytes: [UInt8])] {
        let url = try #require(Bundle.module.url(forResource: "Fixtures/pgoutput-v2", withExtension: "txt"))
        return try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            let hex = Array(parts[1].utf8)
            var bytes: [UInt8] = []
            for index in stride(from: 0, to: hex.count, by: 2) {
                bytes.append(UInt8(String(decoding: hex[index..<index + 2], as: UTF8.self), radix: 16)!)
            }
            return (LSN(parts[0])!, bytes)
        }
    }

    static func decodeAll() throws -> [PgOutputMessage] {
        var decoder = PgOutputDecoder()
        return try fixture().map { try decoder.decode($0.bytes, at: $0.lsn) }
    }

    func text(_ value: PgOutputMessage.TupleValue) -> String? {
        if case .text(let bytes) = value { return String(decoding: bytes, as: UTF8.self) }
        return nil
    }

    @Test func decodesEveryCapturedMessage() throws {
        let messages = try Self.decodeAll()
        #expect(messages.count > 2000)
    }

    @Test func firstTransactionCarriesTypeRelationAndInserts() throws {
        let messages = try Self.decodeAll()
        guard case .begin(let begin) = messages[0] else { Issue.record("expected Begin, got \(messages[0])"); return }
        #expect(begin.xid > 0)
        guard case .type(nil, _, "public", "mood") = messages[1] else { Issue.record("expected Type mood, got \(messages[1])"); return }
        guard case .relation(let items) = messages[2] else { Issue.record("expected Relation"); return }
        #expect(items.namespace == "public" && items.name == "items" && items.replicaIdentity == UInt8(ascii: "d"))
        #expect(items.columns.map(\.name) == ["id", "name", "mood", "blob", "doc"])
        #expect(items.columns.map(\.isKey) == [true, false, false, false, false])
        #expect(items.columns[0].typeOid == 23 && items.columns[0].typeModifier == -1)
        guard case .insert(nil, items.oid, let row) = messages[3] else { Issue.record("expected Insert"); return }
        #expect(row.map(text) == ["1", "one", "happy", "\\x00ff", String(repeating: "x", count: 3000)])
        guard case .insert(nil, _, let second) = messages[4] else { Issue.record("expected Insert"); return }
        #expect(second[1] == .null && second[3] == .null && text(second[4]) == "")
        guard case .commit(let commit) = messages[5] else { Issue.record("expected Commit"); return }
        #expect(commit.commitLSN == begin.finalLSN && commit.endLSN > commit.commitLSN)
    }

    @Test func updatesDeletesAndOldTuples() throws {
        let changes = try Self.decodeAll().filter {
            switch $0 { case .update, .delete: return true; default: return false }
        }
        #expect(changes.count == 5)
        // The untouched TOAST column is marked unchanged, never sent as NULL.
        guard case .update(_, _, nil, let new) = changes[0] else { Issue.record("\(changes[0])"); return }
        #expect(text(new[1]) == "uno" && new[4] == .unchanged)
        // A key change carries the old key.
        guard case .update(_, _, .key(let oldKey)?, let moved) = changes[1] else { Issue.record("\(changes[1])"); return }
        #expect(text(oldKey[0]) == "2" && oldKey[1] == .null && text(moved[0]) == "10")
        guard case .delete(_, _, .key(let deleted)) = changes[2] else { Issue.record("\(changes[2])"); return }
        #expect(text(deleted[0]) == "10")
        // REPLICA IDENTITY FULL sends the whole old row.
        guard case .update(_, _, .full(let oldRow)?, _) = changes[3] else { Issue.record("\(changes[3])"); return }
        #expect(oldRow.map(text) == ["1", "a"])
        guard case .delete(_, _, .full) = changes[4] else { Issue.record("\(changes[4])"); return }
        let audit = try Self.decodeAll().compactMap { message -> PgOutputMessage.Relation? in
            if case .relation(let relation) = message, relation.name == "audit" { return relation }
            return nil
        }.first
        #expect(audit?.replicaIdentity == UInt8(ascii: "f") && audit?.columns.allSatisfy(\.isKey) == true)
    }

    @Test func savepointRollbackMessagesAndTruncate() throws {
        let messages = try Self.decodeAll()
        let inserted = messages.compactMap { message -> String? in
            if case .insert(nil, _, let row) = message, row.count > 1 { return text(row[1]) }
            return nil
        }
        #expect(inserted.contains("kept") && !inserted.contains("rolled back"))
        let logical = messages.compactMap { message -> (Bool, String, String)? in
            if case .message(nil, let transactional, _, let prefix, let content) = message {
                return (transactional, prefix, String(decoding: content, as: UTF8.self))
            }
            return nil
        }
        #expect(logical.map(\.0) == [true, false])
        #expect(logical.map(\.2) == ["transactional", "heartbeat"])
        #expect(logical.allSatisfy { $0.1 == "tributary" })
        let truncates = messages.compactMap { message -> (Int, Bool, Bool)? in
            if case .truncate(nil, let relations, let cascade, let restart) = message { return (relations.count, cascade, restart) }
            return nil
        }
        #expect(truncates.count == 1 && truncates[0] == (2, true, true))
    }

    @Test func streamedTransactionsWithSubtransactionAndWholeAborts() throws {
        let messages = try Self.decodeAll()
        var streamed: [UInt32: Int] = [:]
        var current: UInt32?
        var aborts: [(UInt32, UInt32)] = []
        var commits: [UInt32] = []
        for message in messages {
            switch message {
            case .streamStart(let xid, _): current = xid
            case .streamStop: current = nil
            case .insert(let xid?, _, _):
                #expect(current != nil, "an xid-tagged change outside a stream block")
                streamed[xid, default: 0] += 1
            case .streamAbort(let xid, let sub): aborts.append((xid, sub))
            case .streamCommit(let xid, let commit):
                commits.append(xid)
                #expect(commit.endLSN > commit.commitLSN)
            default: break
            }
        }
        #expect(commits.count == 1)
        #expect(aborts.count == 2)
        let subtransactionAbort = try #require(aborts.first { $0.0 != $0.1 })
        #expect(subtransactionAbort.0 == commits[0])
        #expect(streamed[subtransactionAbort.1, default: 0] > 0, "the aborted subtransaction's changes were streamed first")
        #expect(aborts.contains { $0.0 == $0.1 && $0.0 != commits[0] })
    }

    @Test func refusesWhatItDoesNotUnderstand() throws {
        var decoder = PgOutputDecoder()
        let begin = try #require(try Self.fixture().first)
        #expect(throws: PgOutputDecoder.Failure.self) { try decoder.decode(Array(begin.bytes.dropLast(2)), at: begin.lsn) }
        do {
            _ = try decoder.decode(begin.bytes + [0], at: LSN(0x42))
            Issue.record("trailing byte accepted")
        } catch let failure as PgOutputDecoder.Failure {
            #expect(failure.description == "cannot decode pgoutput message 'B' at 0/42: 1 bytes left over: the layout is not what this decoder knows")
        }
        #expect(throws: PgOutputDecoder.Failure(messageType: "Z", lsn: LSN(7), reason: "unknown message type")) {
            try decoder.decode([UInt8(ascii: "Z")], at: LSN(7))
        }
    }

    @Test func replicationFramingAndStatusUpdate() throws {
        let keepalive: [UInt8] = [UInt8(ascii: "k"), 0, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 9, 1]
        #expect(try ReplicationMessage.decode(keepalive) == .keepalive(walEnd: LSN(0x01020304), sendTime: 9, replyRequested: true))
        let status = ReplicationMessage.standbyStatus(durable: LSN(0x10), clientTime: 5)
        #expect(status.count == 34 && status[0] == UInt8(ascii: "r"))
        #expect(Array(status[1..<9]) == [0, 0, 0, 0, 0, 0, 0, 0x10])
        #expect(Array(status[9..<17]) == [0, 0, 0, 0, 0, 0, 0, 0x10])
        #expect(Array(status[17..<25]) == [0, 0, 0, 0, 0, 0, 0, 0x10])
    }
}
