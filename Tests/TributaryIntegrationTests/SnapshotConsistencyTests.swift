import Foundation
import Synchronization
import Testing
import TributaryCore
import TributaryPostgres
@testable import TributaryServices

/// The snapshot is exactly the slot's starting point: what committed before it is in the
/// snapshot and not in the stream, what committed after it is in the stream and not in the snapshot.
@Suite(.clusterLoad) struct SnapshotConsistencyTests {
    @Test func rowsCommittedDuringTheSnapshotAreInTheStreamNotTheSnapshot() async throws {
        let fixture = try await PipelineFixture.make("consistency", sources: [("qvp", ["public.events", "public.bulk"])])
        let source = try await fixture.connectSource("qvp")
        try await source.execute("""
            CREATE TABLE events (id bigserial PRIMARY KEY, marker text NOT NULL);
            INSERT INTO events (marker) SELECT 'before-' || i FROM generate_series(1, 500) i;
            -- Enough data that the copy takes a while, so the writer below runs during it.
            CREATE TABLE bulk (id int PRIMARY KEY, payload text);
            INSERT INTO bulk SELECT i, repeat(md5(i::text), 8) FROM generate_series(1, 200000) i;
            """)
        let writerConninfo = fixture.source("qvp").conninfo
        let writer = BackgroundWriter()

        let manifest = try await fixture.snapshot("qvp") { _ in
            // The slot exists and its snapshot is exported; nothing is copied yet. These commits are
            // after the consistent point for sure.
            let connection = try! await PostgresConnection.connect(writerConninfo, name: "writer")
            for i in 1...20 { try! await connection.query("INSERT INTO events (marker) VALUES ($1)", ["after-\(i)"]) }
            writer.start {
                var count = 0
                while !writer.stopped {
                    count += 1
                    try await connection.query("INSERT INTO events (marker) VALUES ($1)", ["during-\(count)"])
                }
                return count
            }
        }
        let during = try await writer.stop()
        #expect(during > 0)

        // The manifest's LSN is the slot's consistent point (nothing has consumed the slot yet).
        let slot = try await source.query(
            "SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1", [fixture.source("qvp").slot])
        #expect(slot.scalar.flatMap(LSN.init) == manifest.consistentPoint)

        _ = try await fixture.load("qvp")
        let target = try await fixture.connectTarget()
        let snapshotMarkers = Set(try await target.query("SELECT marker FROM stg.qvp_events").rows.map { $0[0]! })
        let streamMarkers = Set(try await source.query("""
            SELECT (regexp_matches(encode(data, 'escape'), '((?:before|after|during)-[0-9]+)'))[1]
            FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL, 'proto_version', '1', 'publication_names', $2)
            WHERE get_byte(data, 0) = ascii('I')
            """, [fixture.source("qvp").slot, "tributary_qvp"]).rows.map { $0[0]! })
        let all = Set(try await source.query("SELECT marker FROM events").rows.map { $0[0]! })

        #expect(all.count == 500 + 20 + during)
        #expect(snapshotMarkers.intersection(streamMarkers).isEmpty, "a row is in both the snapshot and the stream")
        #expect(snapshotMarkers.union(streamMarkers) == all, "a row is in neither the snapshot nor the stream")
        #expect((1...500).allSatisfy { snapshotMarkers.contains("before-\($0)") })
        #expect((1...20).allSatisfy { streamMarkers.contains("after-\($0)") && !snapshotMarkers.contains("after-\($0)") })
    }
}

/// A loop of writes in the background, stopped on request; reports how many it made.
final class BackgroundWriter: Sendable {
    private let stopFlag = Atomic<Bool>(false)
    private let task = Mutex<Task<Int, any Error>?>(nil)

    var stopped: Bool { stopFlag.load(ordering: .relaxed) }

    func start(_ body: @escaping @Sendable () async throws -> Int) {
        task.withLock { $0 = Task { try await body() } }
    }

    func stop() async throws -> Int {
        stopFlag.store(true, ordering: .relaxed)
        return try await task.withLock { $0 }!.value
    }
}
