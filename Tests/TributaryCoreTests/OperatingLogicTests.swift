import Foundation
import Testing
import TributaryCore

/// Pure pieces of the OCI client and of verify: retry decisions, multipart ranges, key-range SQL,
/// and the configuration that drives them.
@Suite struct OperatingLogicTests {
    @Test func retriesOnThrottlingAndServerErrorsButNotOnNotImplemented() {
        #expect(OCIRetryPolicy.isRetryable(status: 429))
        #expect(OCIRetryPolicy.isRetryable(status: 500) && OCIRetryPolicy.isRetryable(status: 503))
        #expect(!OCIRetryPolicy.isRetryable(status: 501))
        #expect(!OCIRetryPolicy.isRetryable(status: 400) && !OCIRetryPolicy.isRetryable(status: 404) && !OCIRetryPolicy.isRetryable(status: 412))
        let policy = OCIRetryPolicy(attempts: 5, baseDelay: .milliseconds(100), maximumDelay: .seconds(2))
        #expect(policy.backoff.delay(beforeRetry: 0, unit: 1) == .milliseconds(100))
        #expect(policy.backoff.delay(beforeRetry: 3, unit: 1) == .milliseconds(800))
        #expect(policy.backoff.delay(beforeRetry: 10, unit: 1) == .seconds(2), "capped")
        #expect(policy.backoff.delay(beforeRetry: 3, unit: 0.5) == .milliseconds(400), "full jitter scales the ceiling")
    }

    @Test func reconnectBackoffDoublesToItsCapAndStartsOverAfterASuccess() {
        var backoff = Backoff(initial: .milliseconds(500), maximum: .seconds(3))
        #expect((0..<5).map { _ in backoff.next() } == [.milliseconds(500), .seconds(1), .seconds(2), .seconds(3), .seconds(3)])
        #expect(backoff.failures == 5)
        backoff.reset()
        #expect(backoff.next() == .milliseconds(500))
    }

    @Test func multipartPlansCoverTheFileExactlyOnce() {
        let plan = MultipartPlan(size: 10 * 1024 + 5, partSize: 1024)
        #expect(plan.parts.count == 11)
        #expect(plan.parts.map(\.number) == Array(1...11))
        #expect(plan.parts.last!.length == 5)
        #expect(plan.parts.reduce(Int64(0)) { $0 + $1.length } == 10 * 1024 + 5)
        #expect(zip(plan.parts, plan.parts.dropFirst()).allSatisfy { $0.offset + $0.length == $1.offset })
        #expect(MultipartPlan(size: 4096, partSize: 1024).parts.count == 4)
    }

    @Test func keyRangesCompareTheKeysTextFormInCCollationWhereTheTypesDiffer() {
        let key = [KeyColumn(name: "region"), KeyColumn(name: "id")]
        let within = KeyRangeSQL.within(key, lower: ["eu", "10"], upper: ["us", nil])
        #expect(within == #"ROW("region"::text COLLATE "C", "id"::text COLLATE "C") >= ROW('eu' COLLATE "C", '10' COLLATE "C") AND ROW("region"::text COLLATE "C", "id"::text COLLATE "C") < ROW('us' COLLATE "C", NULL)"#)
        #expect(KeyRangeSQL.within([KeyColumn(name: "id")], lower: nil, upper: nil) == "true")
        let sums = KeyRangeSQL.bucketChecksums(table: QualifiedName(schema: "stg", name: "qvp_items"), columns: ["id", "amount"],
                                               hash: .wholeRowText, key: [KeyColumn(name: "id")], bounds: [["100"], ["200"]], lower: nil, upper: nil, excludeTombstones: true)
        #expect(sums.contains(#"CASE WHEN ROW("id"::text COLLATE "C") < ROW('100' COLLATE "C") THEN 0 WHEN ROW("id"::text COLLATE "C") < ROW('200' COLLATE "C") THEN 1 ELSE 2 END"#))
        #expect(sums.contains(#"AND NOT "_deleted""#))
    }

    @Test func keysOfTheSameTypeOnBothSidesCompareInTheirOwnOrder() {
        func column(_ name: String, _ source: String, _ staging: String? = nil) -> KeyColumn {
            KeyColumn(ColumnSchema(name: name, sourceType: source, stagingType: staging ?? source, typeOid: 0, notNull: true))
        }
        #expect(column("id", "bigint").nativeType == "bigint")
        #expect(column("code", "character varying(20)").nativeType == "character varying(20)")
        #expect(column("state", "public.contract_state", "text").nativeType == nil, "an enum is text in STG: compared as text")
        #expect(column("at", "timestamp with time zone").nativeType == "timestamp with time zone")
        #expect(column("shape", "point").nativeType == nil, "no order of its own")
        let key = [column("id", "bigint"), column("code", "text")]
        #expect(KeyRangeSQL.within(key, lower: ["12506", "b"], upper: nil)
                == #"ROW("id", "code"::text COLLATE "C") >= ROW('12506'::bigint, 'b'::text COLLATE "C")"#)
        // 1251 sorts before 12506 as text, after it as a number: the bound is a number.
        #expect(KeyRangeSQL.boundaries(table: QualifiedName(schema: "public", name: "t"), key: [column("id", "integer")], lower: nil,
                                       upper: ["1251"], buckets: 16).contains(#"ORDER BY ROW("id")"#))
    }

    @Test func ociSettingsAndIndicatorChecksAreRead() throws {
        let configuration = try ConfigurationParser.parse(files: [
            .init(name: "slots/tributary.yaml", text: """
                target:
                  connection: "host=db"
                staging: oci://ns/bucket/pre/fix
                oci:
                  config_file: oci/config
                  profile: MIGRATION
                  endpoint: http://127.0.0.1:9000
                  multipart_threshold: 16MiB
                  part_size: 8MiB
                  connections: 6
                  attempts: 3
                """),
            .init(name: "slots/qvp.yaml", text: """
                connection: "host=qvp"
                tables:
                  - name: public.items
                checks:
                  - name: item count
                    source: SELECT count(*) FROM items
                    target: SELECT count(*) FROM stg.qvp_items WHERE NOT _deleted
                """),
        ], directory: "/etc/tributary/slots", environment: [:])
        #expect(configuration.target.staging == .objectStorage(namespace: "ns", bucket: "bucket", prefix: "pre/fix"))
        let oci = configuration.target.oci
        #expect(oci.configFile == "/etc/tributary/slots/oci/config")
        #expect(oci.profile == "MIGRATION" && oci.endpoint == "http://127.0.0.1:9000")
        #expect(oci.multipartThreshold == 16 << 20 && oci.partSize == 8 << 20 && oci.connections == 6 && oci.attempts == 3)
        #expect(configuration.sources[0].checks == [IndicatorCheck(name: "item count", sourceSQL: "SELECT count(*) FROM items",
                                                                   targetSQL: "SELECT count(*) FROM stg.qvp_items WHERE NOT _deleted")])
        #expect(throws: TributaryError.self) {
            try ConfigurationParser.parse(files: [
                .init(name: "slots/tributary.yaml", text: "target:\n  connection: x\nstaging: /s\noci:\n  endpoint: ftp://x\n"),
                .init(name: "slots/qvp.yaml", text: "connection: x\ntables:\n  - name: public.a\n"),
            ], directory: "/d", environment: [:])
        }
    }
}

/// The status page's chart: an hour of samples per source, evenly spaced however often it is read.
@Suite struct StatusHistoryTests {
    static let start = Date(timeIntervalSince1970: 1_800_000_000)

    func sample(_ second: Double, lag: Double = 1) -> StatusHistory.Sample {
        .init(at: Self.start.addingTimeInterval(second), lagSeconds: lag, sourceLagBytes: 10, changesPerSecond: 5, stagedBatches: 0)
    }

    @Test func readingsMoreOftenThanTheSpacingMoveTheNewestSampleOnly() {
        var history = StatusHistory(span: 3600, spacing: 5)
        for second in stride(from: 0.0, through: 20, by: 1) { history.record(sample(second, lag: second), source: "qvp") }
        let series = history.samples["qvp"]!
        #expect(series.map { $0.at.timeIntervalSince(Self.start) } == [0, 5, 10, 15, 20])
        #expect(series.last?.lagSeconds == 20, "the newest reading is always shown")
    }

    @Test func anHourIsKeptAndSourcesTakenOutGo() {
        var history = StatusHistory(span: 3600, spacing: 5)
        for second in stride(from: 0.0, through: 7200, by: 5) { history.record(sample(second), source: "qvp") }
        history.record(sample(0), source: "svp")
        let series = history.samples["qvp"]!
        #expect(series.first.map { $0.at.timeIntervalSince(Self.start) } == 3600 && series.count == 721)
        history.keep(only: ["qvp"])
        #expect(history.samples.keys.sorted() == ["qvp"])
    }
}
