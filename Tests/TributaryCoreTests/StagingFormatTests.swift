import Foundation
import Testing
import TributaryCore

@Suite struct StagingFormatTests {
    @Test func objectNamesAreSafeAndOrderedByLSN() {
        let table = QualifiedName(schema: "Sales Data", name: "a/b.c")
        #expect(ObjectNaming.snapshotPart(source: "qvp", consistentPoint: LSN(0x1A2B3C4), table: table, range: 3, part: 12)
                == "qvp/snapshot/0000000001A2B3C4/Sales%20Data.a%2Fb%2Ec/00003-0012.csv.gz")
        #expect(ObjectNaming.cdcFile(source: "svp", endLSN: LSN(0x10), table: QualifiedName(schema: "public", name: "t"))
                == "svp/cdc/0000000000000010/public.t.csv.gz")
        let early = ObjectNaming.cdcDirectory(source: "q", endLSN: LSN(0xFFFF_FFFF))
        let late = ObjectNaming.cdcDirectory(source: "q", endLSN: LSN(0x1_0000_0000))
        #expect(early < late)
        #expect(ObjectNaming.lsnComponent(of: late + "manifest.json", after: "q/cdc/") == LSN(0x1_0000_0000))
    }

    @Test func gzipRoundTripAndTruncationIsDetected() throws {
        let input = Array((0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 31 % 251) })
        var compressed: [UInt8] = []
        let encoder = GzipEncoder(level: 1)
        for chunk in stride(from: 0, to: input.count, by: 7000) {
            input[chunk..<min(chunk + 7000, input.count)].withUnsafeBytes { bytes in encoder.compress(bytes) { compressed.append(contentsOf: $0) } }
        }
        encoder.finish { compressed.append(contentsOf: $0) }
        #expect(Array(compressed.prefix(2)) == [0x1F, 0x8B])

        func decompress(_ bytes: [UInt8]) throws -> [UInt8] {
            var output: [UInt8] = []
            let decoder = GzipDecoder()
            try bytes.withUnsafeBytes { try decoder.decompress($0) { output.append(contentsOf: $0) } }
            try decoder.finish()
            return output
        }
        #expect(try decompress(compressed) == input)
        #expect(throws: GzipDecoder.Failure.truncated) { try decompress(Array(compressed.dropLast(9))) }
        var corrupt = compressed
        corrupt[corrupt.count / 2] ^= 0xFF
        #expect(throws: GzipDecoder.Failure.self) { try decompress(corrupt) }
        // A flipped bit in the trailer's CRC-32 is caught too, not only damage to the deflate data.
        var badChecksum = compressed
        badChecksum[badChecksum.count - 6] ^= 0x01
        #expect(throws: GzipDecoder.Failure.corrupt("CRC-32 mismatch")) { try decompress(badChecksum) }
        // Members written one after another read as one stream, as gzip reads them; garbage after a member does not.
        #expect(try decompress(compressed + compressed) == input + input)
        #expect(throws: GzipDecoder.Failure.self) { try decompress(compressed + [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09]) }
        #expect(throws: GzipDecoder.Failure.truncated) { try decompress([]) }
    }

    /// Files written by other gzip implementations (here zlib through Python, with a file name in the header) read back.
    @Test(arguments: GzipEncoder.levels)
    func gzipInteroperatesWithOtherImplementations(level: Int) throws {
        let text = Array(String(repeating: "1,\"quoted, text\",2024-01-01 00:00:00+00,\n", count: 20_000).utf8)
        let encoder = GzipEncoder(level: level)
        var compressed: [UInt8] = []
        text.withUnsafeBytes { bytes in encoder.compress(bytes) { compressed.append(contentsOf: $0) } }
        encoder.finish { compressed.append(contentsOf: $0) }
        #expect(compressed.count < text.count / 4 || level == 0)

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gzip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let ours = directory.appendingPathComponent("ours.gz"), theirs = directory.appendingPathComponent("theirs.gz")
        try Data(compressed).write(to: ours)
        // Python's gzip module is zlib: it must read ours, and we must read what it writes.
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", """
            import gzip, sys
            data = gzip.open(sys.argv[1]).read()
            with gzip.GzipFile(filename="named.csv", mode="wb", compresslevel=6, fileobj=open(sys.argv[2], "wb")) as f: f.write(data)
            """, ours.path, theirs.path]
        try python.run()
        python.waitUntilExit()
        #expect(python.terminationStatus == 0)
        var output: [UInt8] = []
        let decoder = GzipDecoder()
        try Data(contentsOf: theirs).withUnsafeBytes { try decoder.decompress($0) { output.append(contentsOf: $0) } }
        try decoder.finish()
        #expect(output == text)
    }

    @Test func sha256KnownVector() {
        #expect(SHA256Hasher.hex(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test func manifestRoundTripsWithStableJSON() throws {
        let manifest = SnapshotManifest(
            source: "qvp", slot: "tributary_qvp", consistentPoint: LSN(0x16B3748), snapshotName: "00000003-00000002-1",
            startedAt: Date(timeIntervalSince1970: 1_700_000_000), finishedAt: Date(timeIntervalSince1970: 1_700_000_060),
            tables: [SnapshotTable(relation: RelationSchema(table: QualifiedName(schema: "public", name: "t"),
                                                            columns: [.init(name: "id", sourceType: "integer", stagingType: "integer", typeOid: 23, notNull: true)],
                                                            key: ["id"]),
                                   stagingTable: "qvp_t", rows: 1,
                                   parts: [StagedFile(key: "k", rows: 1, bytes: 30, uncompressedBytes: 12, sha256: "ab")])])
        let encoded = try ManifestCoding.encode(manifest)
        let text = String(decoding: encoded, as: UTF8.self)
        #expect(text.contains("\"consistent_point\":\"0/16B3748\""))
        #expect(text.contains("\"type_oid\":23"))
        // Compact: no indentation, no line breaks.
        #expect(!text.contains("\n") && !text.contains("  "))
        #expect(try ManifestCoding.decode(SnapshotManifest.self, from: encoded) == manifest)
        #expect(try ManifestCoding.encode(manifest) == encoded)
        // Lag is measured below a second: times keep their microseconds.
        var precise = manifest
        precise.finishedAt = Date(timeIntervalSince1970: 1_700_000_060.123456)
        let decoded = try ManifestCoding.decode(SnapshotManifest.self, from: try ManifestCoding.encode(precise))
        #expect(abs(decoded.finishedAt.timeIntervalSince1970 - 1_700_000_060.123456) < 0.000_002)
        #expect(String(decoding: try ManifestCoding.encode(precise), as: UTF8.self).contains("\"2023-11-14T22:14:20.123456Z\""))
    }

    @Test func batchManifestRoundTrips() throws {
        let manifest = BatchManifest(source: "qvp", slot: "s", firstCommitLSN: LSN(0x10), endLSN: LSN(0x20),
                                     firstCommitTime: Date(timeIntervalSince1970: 1_800_000_000.25),
                                     lastCommitTime: Date(timeIntervalSince1970: 1_800_000_001.5), transactions: 2, rows: 0, files: [])
        let encoded = try ManifestCoding.encode(manifest)
        #expect(String(decoding: encoded, as: UTF8.self).contains("\"end_lsn\":\"0/20\""))
        #expect(try ManifestCoding.decode(BatchManifest.self, from: encoded) == manifest)
    }

    /// What format /1 objects hold, every optional key present, in the bytes tributary wrote when
    /// its coders converted property names to snake_case (taken from a breadth run's staging store;
    /// the keys are now spelled out in each type): each decodes, and encodes back byte for byte.
    static let relationJSON = #"{"announced":true,"columns":[{"attnum":1,"has_default":true,"missing_value":"0","name":"id","not_null":true,"source_type":"bigint","staging_type":"bigint","type_oid":20}],"key":["id"],"oid":19192,"source_name":{"name":"t_old","schema":"public"},"table":{"name":"t_1","schema":"public"},"unidentified":"a column dropped and added","unidentified_since":"0/10"}"#
    static let tableJSON = #"{"keys_may_repeat":true,"parts":[{"bytes":9759611,"key":"qvp/snapshot/000000001FCAFFE8/public.t_1/00000-0000.csv.gz","rows":403341,"sha256":"0dc8b21c","uncompressed_bytes":33547349}],"relation":"# + relationJSON + #","rows":403341,"staging_table":"qvp_t_1"}"#
    static let storedObjects: [(any VersionedManifest.Type, String)] = [
        (BatchManifest.self, #"{"end_lsn":"0/2040DAE8","files":[{"deletes":1,"distinct_keys":true,"file":{"bytes":274,"key":"qvp/cdc/000000002040DAE8/public.t_1.csv.gz","rows":13,"sha256":"fffab8e1","uncompressed_bytes":713},"inserts":10,"relation":"# + relationJSON + #","segment":0,"staging_table":"qvp_t_1","truncates":0,"updates":2}],"first_commit_lsn":"0/203E0B88","first_commit_time":"2026-12-07T12:32:37.808511Z","format":"tributary-batch/1","last_commit_time":"2026-12-07T12:32:39.115897Z","rows":832,"slot":"tributary_qvp","source":"qvp","transactions":301}"#),
        (SnapshotManifest.self, #"{"consistent_point":"0/1FCAFFE8","finished_at":"2026-12-07T12:29:01.000001Z","format":"tributary-snapshot/1","scope":"full","slot":"tributary_qvp","snapshot_name":"00000003-00000002-1","source":"qvp","started_at":"2026-12-07T12:28:40.500000Z","tables":["# + tableJSON + #"]}"#),
        (SnapshotStart.self, #"{"consistent_point":"0/1FCAFFE8","format":"tributary-snapshot-start/1","relations":["# + relationJSON + #"],"slot":"tributary_qvp","source":"qvp","started_at":"2026-12-07T12:28:40.500000Z","tables":["public.t_1"]}"#),
        (SnapshotRangeDone.self, #"{"format":"tributary-snapshot-range/1","pages":{"end":8192,"first":0},"snapshot_xmin":1098,"table":"# + tableJSON + #"}"#),
        (SnapshotTableDone.self, #"{"format":"tributary-snapshot-table/1","table":"# + tableJSON + #"}"#),
    ]

    @Test func storedObjectsKeepTheirJSONByteForByte() throws {
        func roundTrip<Manifest: VersionedManifest>(_ type: Manifest.Type, _ json: String) throws -> String {
            String(decoding: try ManifestCoding.encode(try ManifestCoding.decode(type, from: Array(json.utf8))), as: UTF8.self)
        }
        for (type, json) in Self.storedObjects {
            #expect(try roundTrip(type, json) == json, "\(type)")
        }
    }

    /// Rows are written in one pass of C (`tributary_csv_write_field`), byte for byte as
    /// `CSVEncoding` builds them field by field: every value that must be quoted and every one
    /// that must not, quotes in runs and at the SIMD scan's 16-byte edges, NULLs, sequences of
    /// every length.
    @Test func rowsWrittenInOnePassAreTheRowsBuiltFieldByField() throws {
        let texts = ["", "\\.", "\\.x", "x\\.", "a\"b", "\"", "\"\"\"", ",", "a,b", "x\ny", "\r", "\r\n", "plain", "é ü 日本",
                     String(repeating: "\"", count: 40), String(repeating: "a", count: 15) + "\"", String(repeating: "a", count: 16) + ",",
                     String(repeating: "b", count: 33), "{\"k\": [1, \"two\"], \"s\": \"a\\\"b\"}"]
        let encoder = try ChangeRowEncoder(columnNames: ["id", "v", "w"], key: ["id"])
        for (index, text) in texts.enumerated() {
            for (sequence, other) in [(0, PgOutputMessage.TupleValue.null), (9, .text(ByteSlice(copying: texts[(index + 1) % texts.count].utf8))),
                                      (1_234_567_890_123, .text(ByteSlice(copying: "7".utf8)))] {
                let values: [PgOutputMessage.TupleValue] = [.text(ByteSlice(copying: String(index).utf8)), .text(ByteSlice(copying: text.utf8)), other]
                var built: [UInt8] = [], line: [UInt8] = [], written: [UInt8] = []
                try encoder.append(.insert, values, lsn: Array("1A/2B3C".utf8), sequence: sequence, to: &built)
                try encoder.write(.insert, values, lsn: Array("1A/2B3C".utf8), sequence: sequence, line: &line) { written += $0 }
                #expect(written == built, "\(text.debugDescription), sequence \(sequence)")
                #expect(line.isEmpty, "the row never went through the line")
            }
        }
    }

    /// A row with a value of a megabyte or more is written in pieces, byte for byte as it would be
    /// built whole: unquoted, quoted (a comma and quotes inside), beside small values and NULLs.
    @Test func aRowWithAHugeValueIsWrittenInPiecesExactlyAsWhole() throws {
        let encoder = try ChangeRowEncoder(columnNames: ["id", "doc", "note", "blob"], key: ["id"])
        let size = ChangeRowEncoder.streamedValueBytes * 3 + 17
        let plain = ArraySlice((0..<size).map { UInt8(ascii: "a") + UInt8($0 % 26) })
        var quoted = plain
        quoted[quoted.startIndex + 5] = UInt8(ascii: ",")
        quoted[quoted.startIndex + size - 3] = UInt8(ascii: "\"")
        for big in [plain, quoted].map({ ByteSlice(copying: $0) }) {
            let values: [PgOutputMessage.TupleValue] = [.text(ByteSlice(copying: "7".utf8)), .text(big), .null, .text(ByteSlice(copying: "x,y".utf8))]
            var whole: [UInt8] = []
            try encoder.append(.update, values, lsn: Array("0/16".utf8), sequence: 3, to: &whole)
            var pieces: [[UInt8]] = [], line: [UInt8] = []
            try encoder.write(.update, values, lsn: Array("0/16".utf8), sequence: 3, line: &line) { pieces.append(Array($0)) }
            #expect(pieces.flatMap { $0 } == whole)
            #expect(pieces.count > 3 && pieces.allSatisfy { $0.count <= ChangeRowEncoder.streamedValueBytes + 1 },
                    "no piece holds the value whole")
        }
    }
}
