import Foundation
import Testing
import TributaryCore
import TributaryStorage

/// Snapshot, replicate and apply unchanged over an oci:// staging store, with the emulator answering
/// every request, and failing a tenth of them.
@Suite struct OCIPipelineTests {
    @Test(arguments: [0.0, 0.1])
    func pipelineOverOCIWithFailingRequestsLosesAndDuplicatesNothing(errorRate: Double) async throws {
        let emulator = try await OCIEmulator.start()
        try await emulator.setFaults(["error_rate": errorRate, "statuses": [503, 429], "seed": 11])
        let harness = ApplierTests()
        // Enough seed rows that each snapshot part is far above the 64 KiB multipart threshold: multipart
        // uploads run under faults too.
        let fixture = try await harness.twoSourceFixture("oci", configure: { fixture in
            fixture.staging = "oci://\(OCIEmulator.namespace)/\(OCIEmulator.bucket)/pipeline"
            fixture.extraTargetYAML = emulator.targetYAML(attempts: 15, multipartThreshold: "64KiB", partSize: "32KiB")
        }, seed: "INSERT INTO ledger SELECT i, 7, md5(random()::text) || md5(random()::text) FROM generate_series(1, 20000) i")
        try await harness.runRandomWorkloadEndsEqual(fixture, steps: 150)

        let store = try fixture.store()
        #expect(store is OCIStagingStore)
        #expect(try await store.list(prefix: "qvp/cdc/", startAfter: nil).count > 4, "the batches went to the emulator")
        let stats = try await emulator.stats()
        if errorRate > 0 {
            #expect(stats["injected_errors"]! >= stats["requests"]! / 20, "\(stats)")
        } else {
            #expect(stats["injected_errors"] == 0)
        }
        #expect(stats["multipart_commits"]! > 0, "\(stats)")
        #expect(stats["rejected_signatures"] == 0)
    }
}
