import Testing
import TributaryCore

@Suite struct CSVToBinaryTranscoderTests {
    static func column(_ name: String, _ type: String) -> ColumnSchema {
        ColumnSchema(name: name, sourceType: type, stagingType: type, typeOid: 0, notNull: false)
    }

    static let relation = RelationSchema(
        table: QualifiedName(schema: "public", name: "t"),
        columns: [column("id", "bigint"), column("small", "smallint"), column("n", "integer"), column("flag", "boolean"),
                  column("ref", "uuid"), column("note", "text"), column("code", "character varying(10)"), column("pad", "character(3)")],
        key: ["id"])
    static let header = "id,small,n,flag,ref,note,code,pad\n"

    /// A decoded field: NULL, or its bytes.
    enum Field: Equatable { case null, bytes([UInt8]) }

    /// Converts `csv` fed in chunks of `chunk` bytes; returns the binary stream.
    func convert(_ csv: [UInt8], relation: RelationSchema = Self.relation, chunk: Int = 1 << 20) throws -> [UInt8] {
        try convert(csv, with: try #require(CSVToBinaryTranscoder(relation: relation)), chunk: chunk)
    }

    func convert(_ csv: [UInt8], with transcoder: CSVToBinaryTranscoder, chunk: Int) throws -> [UInt8] {
        var transcoder = transcoder
        var out: [UInt8] = []
        for start in stride(from: 0, to: csv.count, by: chunk) {
            try csv[start..<min(start + chunk, csv.count)].withUnsafeBytes { try transcoder.transcode($0) { out.append(contentsOf: $0) } }
        }
        try transcoder.finish { out.append(contentsOf: $0) }
        return out
    }

    /// The tuples of a binary COPY stream, checked for its header and trailer.
    func tuples(_ stream: [UInt8]) throws -> [[Field]] {
        let signature: [UInt8] = Array("PGCOPY\n".utf8) + [0xFF, 0x0D, 0x0A, 0x00]
        #expect(Array(stream.prefix(11)) == signature)
        #expect(Array(stream[11..<19]) == [0, 0, 0, 0, 0, 0, 0, 0])
        var offset = 19, rows: [[Field]] = []
        func read(_ count: Int) throws -> [UInt8] {
            try #require(offset + count <= stream.count)
            defer { offset += count }
            return Array(stream[offset..<(offset + count)])
        }
        while true {
            let countBytes = try read(2)
            if countBytes == [0xFF, 0xFF] { break }
            let fields = Int(countBytes[0]) << 8 | Int(countBytes[1])
            var row: [Field] = []
            for _ in 0..<fields {
                let length = try read(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                row.append(length == 0xFFFF_FFFF ? .null : .bytes(try read(Int(length))))
            }
            rows.append(row)
        }
        #expect(offset == stream.count, "nothing after the trailer")
        return rows
    }

    func text(_ value: String) -> Field { .bytes(Array(value.utf8)) }
    func int(_ value: Int64, bytes: Int) -> Field { .bytes((0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) }) }

    @Test func everyKindArrivesAsTheServerWouldStoreIt() throws {
        let csv = Self.header + """
            9223372036854775807,32767,2147483647,t,a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,"say ""hi"", then
            go",abc,"x  "
            -9223372036854775808,-32768,-2147483648,f,A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11,,"",
            0,,,,,"a,b\r\nc","grüße 😀",\\N\r

            """
        let rows = try tuples(try convert(Array(csv.utf8)))
        let uuid: Field = .bytes([0xA0, 0xEE, 0xBC, 0x99, 0x9C, 0x0B, 0x4E, 0xF8, 0xBB, 0x6D, 0x6B, 0xB9, 0xBD, 0x38, 0x0A, 0x11])
        #expect(rows == [
            [int(.max, bytes: 8), int(32767, bytes: 2), int(2_147_483_647, bytes: 4), .bytes([1]), uuid, text("say \"hi\", then\ngo"), text("abc"), text("x  ")],
            [int(.min, bytes: 8), int(-32768, bytes: 2), int(-2_147_483_648, bytes: 4), .bytes([0]), uuid, .null, text(""), .null],
            // An unquoted empty field is NULL, a quoted one the empty string; `\N` is text.
            [int(0, bytes: 8), .null, .null, .null, .null, text("a,b\r\nc"), text("grüße 😀"), text("\\N")],
        ])
    }

    @Test func anyChunkingGivesTheSameStream() throws {
        var csv = Self.header
        for i in 0..<300 {
            csv += "\(i * 7919 - 1000),\(i % 300),\(i),\(i % 2 == 0 ? "t" : "f"),,\"\(String(repeating: "q\"\"", count: i % 5)),\n\",v\(i),\(i % 3 == 0 ? "" : "ab")\n"
        }
        let bytes = Array(csv.utf8)
        let whole = try convert(bytes)
        #expect(try tuples(whole).count == 300)
        for chunk in [1, 2, 3, 7, 16, 17, 64, 1000] {
            #expect(try convert(bytes, chunk: chunk) == whole, "chunks of \(chunk)")
        }
        // A last line without its line feed is converted at the end.
        #expect(try tuples(try convert(Array((Self.header + "1,2,3,t,,x,y,z").utf8))).count == 1)
        // A header alone: a table with no rows.
        #expect(try tuples(try convert(Array(Self.header.utf8))) == [])
    }

    @Test func whatTheOutputFunctionsCannotHaveWrittenIsRefused() {
        func failure(_ csv: String) -> CSVToBinaryTranscoder.Failure? {
            do {
                _ = try convert(Array(csv.utf8))
                return nil
            } catch let failure as CSVToBinaryTranscoder.Failure {
                return failure
            } catch {
                return nil
            }
        }
        let columns = Self.relation.columnNames
        // Out of range, not digits, a sign the output never writes, not t or f, not a uuid.
        #expect(failure(Self.header + "1,32768,1,t,,,,\n") == .badValue(line: 2, column: "small"))
        #expect(failure(Self.header + "1,1,2147483648,t,,,,\n") == .badValue(line: 2, column: "n"))
        #expect(failure(Self.header + "9223372036854775808,1,1,t,,,,\n") == .badValue(line: 2, column: "id"))
        #expect(failure(Self.header + "1,1,1.5,t,,,,\n") == .badValue(line: 2, column: "n"))
        #expect(failure(Self.header + "+1,1,1,t,,,,\n") == .badValue(line: 2, column: "id"))
        #expect(failure(Self.header + "1,1,1,true,,,,\n") == .badValue(line: 2, column: "flag"))
        #expect(failure(Self.header + "1,1,1,t,a0eebc999c0b4ef8bb6d6bb9bd380a11,,,\n") == .badValue(line: 2, column: "ref"))
        #expect(failure(Self.header + "1,1,1,t,,,,\n\"\",1,1,t,,,,\n") == .badValue(line: 3, column: "id"))
        // Field counts, quotes, carriage returns.
        #expect(failure(Self.header + "1,1,1,t,,,\n") == .fieldCount(line: 2, fields: 7, expected: 8))
        #expect(failure(Self.header + "1,1,1,t,,,,,\n") == .fieldCount(line: 2, fields: 8, expected: 8))
        #expect(failure(Self.header + "1,1,1,t,,\"open,,\n") == .unterminatedQuote(line: 2))
        #expect(failure(Self.header + "1,1,1,t,,a\rb,,\n") == .strayCarriageReturn(line: 2))
        // The header must name the columns in order (what HEADER match checks in text format).
        #expect(failure("id,n,small,flag,ref,note,code,pad\n") == .header(expected: columns, found: ["id", "n", "small", "flag", "ref", "note", "code", "pad"]))
        #expect(failure("id,small\n") == .header(expected: columns, found: nil))
        #expect(failure("") == .header(expected: columns, found: nil))
    }

    @Test func onlyTablesWhoseEveryColumnHasABinaryFormConvert() {
        #expect(Self.relation.binaryKinds?.count == 8)
        for type in ["integer[]", "character varying(5)[]", "numeric(12,2)[]", "interval", "interval(3)", "\"char\"", "inet", "bit(3)",
                     "time with time zone", "public.mood", "oid", "xml"] {
            let relation = RelationSchema(table: Self.relation.table, columns: [Self.column("id", "bigint"), Self.column("x", type)], key: ["id"])
            #expect(relation.binaryKinds == nil, "\(type)")
            #expect(CSVToBinaryTranscoder(relation: relation) == nil)
        }
    }

    // MARK: the kinds read by their text form (binary_values.c)

    /// The STG type each kind of the vectors stands for.
    static let vectorTypes = ["float4": "real", "float8": "double precision", "numeric": "numeric", "date": "date",
                              "timestamp": "timestamp without time zone", "timestamptz": "timestamp with time zone",
                              "time": "time without time zone", "bytea": "bytea", "jsonb": "jsonb", "lsn": "pg_lsn"]

    /// (kind, the text its output function writes under the pinned settings, the bytes its send
    /// function gives), made by PostgreSQL 15: `SELECT x::text, float8send(x)` and the like, and
    /// `array_send` of the `_unchanged` literals ChangeRowEncoder writes. Three timestamptz texts
    /// carry offsets other than UTC's, which the input reads as any zone's output. numeric_send
    /// writes a display scale for ±Infinity that numeric_recv ignores; here it is 0.
    static let vectors: [(kind: String, text: String, hex: String)] = [
        ("float4", "0", "00000000"),
        ("float4", "-0", "80000000"),
        ("float4", "1.1754944e-38", "00800000"),
        ("float4", "1e-45", "00000001"),
        ("float4", "3.4028235e+38", "7f7fffff"),
        ("float4", "-3.4028235e+38", "ff7fffff"),
        ("float4", "NaN", "7fc00000"),
        ("float4", "Infinity", "7f800000"),
        ("float4", "-Infinity", "ff800000"),
        ("float4", "0.1", "3dcccccd"),
        ("float4", "123456.79", "47f12065"),
        ("float4", "-1.5e-20", "9e8dabc6"),
        ("float8", "0", "0000000000000000"),
        ("float8", "-0", "8000000000000000"),
        ("float8", "5e-324", "0000000000000001"),
        ("float8", "2.2250738585072014e-308", "0010000000000000"),
        ("float8", "1.7976931348623157e+308", "7fefffffffffffff"),
        ("float8", "NaN", "7ff8000000000000"),
        ("float8", "Infinity", "7ff0000000000000"),
        ("float8", "-Infinity", "fff0000000000000"),
        ("float8", "0.1", "3fb999999999999a"),
        ("float8", "0.30000000000000004", "3fd3333333333334"),
        ("float8", "-1.5e-20", "bbd1b578c96db19b"),
        ("float8", "1.2345678901234568e+20", "441ac53a7e04bcda"),
        ("numeric", "0", "0000000000000000"),
        ("numeric", "0.00", "0000000000000002"),
        ("numeric", "-0.0012", "0001ffff40000004000c"),
        ("numeric", "123.45", "0002000000000002007b1194"),
        ("numeric", "1", "00010000000000000001"),
        ("numeric", "-1", "00010000400000000001"),
        ("numeric", "10000", "00010001000000000001"),
        ("numeric", "9999.9999", "0002000000000004270f270f"),
        ("numeric", "0.0001", "0001ffff000000040001"),
        ("numeric", "100000000.00000001", "000500020000000800010000000000000001"),
        ("numeric", "NaN", "00000000c0000000"),
        ("numeric", "Infinity", "00000000d0000000"),
        ("numeric", "-Infinity", "00000000f0000000"),
        ("numeric", "12345678901234567890.123456789", "000800040000000904d2162e23340d801ed204d2162e2328"),
        ("numeric", "-0.00000000000000000001", "0001fffb400000140001"),
        ("numeric", "1000000000000000000000000000000", "00010007000000000064"),
        ("numeric", "0.5", "0001ffff000000011388"),
        ("numeric", "7", "00010000000000000007"),
        ("date", "2000-01-01", "00000000"),
        ("date", "1999-12-31", "ffffffff"),
        ("date", "2000-02-29", "0000003b"),
        ("date", "1900-03-01", "ffff718f"),
        ("date", "0001-01-01", "fff4dbf9"),
        ("date", "0001-12-31 BC", "fff4dbf8"),
        ("date", "4713-01-01 BC", "ffda97cd"),
        ("date", "5874897-12-31", "7fda970c"),
        ("date", "infinity", "7fffffff"),
        ("date", "-infinity", "80000000"),
        ("date", "2024-02-29", "00002279"),
        ("date", "1582-10-10", "fffdacbb"),
        ("timestamp", "2000-01-01 00:00:00", "0000000000000000"),
        ("timestamp", "1999-12-31 23:59:59.999999", "ffffffffffffffff"),
        ("timestamp", "4713-01-01 00:00:00 BC", "fd0f7fbdaf17e000"),
        ("timestamp", "294276-12-31 23:59:59.999999", "7fffff5bb3b29fff"),
        ("timestamp", "infinity", "7fffffffffffffff"),
        ("timestamp", "-infinity", "8000000000000000"),
        ("timestamp", "2026-12-06 12:34:56.5", "000304f51afe3d20"),
        ("timestamp", "0044-03-15 12:00:00.000001 BC", "ff1af9e8fb46d001"),
        ("timestamptz", "2000-01-01 00:00:00+00", "0000000000000000"),
        ("timestamptz", "1999-12-31 09:59:59.999999+00", "fffffff443ed07ff"),
        ("timestamptz", "2026-11-25 04:30:00.5+00", "000304110c7b6320"),
        ("timestamptz", "4713-01-01 00:00:00+00 BC", "fd0f7fbdaf17e000"),
        ("timestamptz", "294276-12-31 23:59:59.999999+00", "7fffff5bb3b29fff"),
        ("timestamptz", "infinity", "7fffffffffffffff"),
        ("timestamptz", "-infinity", "8000000000000000"),
        ("timestamptz", "1900-01-01 00:19:32+00", "fff4c9eec1e6cd00"),
        ("time", "00:00:00", "0000000000000000"),
        ("time", "23:59:59.999999", "000000141dd75fff"),
        ("time", "24:00:00", "000000141dd76000"),
        ("time", "12:34:56.7", "0000000a8be4ca60"),
        ("bytea", "\\x", ""),
        ("bytea", "\\x00ff0001", "00ff0001"),
        ("bytea", "\\x5c4e", "5c4e"),
        ("bytea", "\\xdeadbeef", "deadbeef"),
        ("jsonb", "{\"a\": [1, null, \"x\\\\ny\"], \"ü\": {}}", "017b2261223a205b312c206e756c6c2c2022785c5c6e79225d2c2022c3bc223a207b7d7d"),
        ("jsonb", "null", "016e756c6c"),
        ("jsonb", "\"just\"", "01226a75737422"),
        ("jsonb", "[]", "015b5d"),
        ("lsn", "0/0", "0000000000000000"),
        ("lsn", "16/B374D848", "00000016b374d848"),
        ("lsn", "FFFFFFFF/FFFFFFFF", "ffffffffffffffff"),
        ("lsn", "0/1", "0000000000000001"),
        ("textarray", "{}", "000000000000000000000019"),
        ("textarray", "{\"doc\"}", "000000010000000000000019000000010000000100000003646f63"),
        ("textarray", "{\"a\",\"b \\\"c\\\"\",\"back\\\\slash\",\"with,comma\",\"\"}", "000000010000000000000019000000050000000100000001610000000562202263220000000a6261636b5c736c6173680000000a776974682c636f6d6d6100000000"),
        ("timestamptz", "2026-11-25 10:00:00.5+05:30", "000304110c7b6320"),
        ("timestamptz", "1999-12-31 23:59:59.999999+14", "fffffff443ed07ff"),
        ("timestamptz", "1900-01-01 00:00:00-00:19:32", "fff4c9eec1e6cd00"),
    ]

    static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = [], index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16)!)
            index = next
        }
        return bytes
    }

    /// A CSV field as CSVEncoding writes it, or always quoted.
    static func field(_ text: String, quoted: Bool) -> String {
        guard quoted else {
            var line: [UInt8] = []
            CSVEncoding.appendField(text, to: &line)
            return String(decoding: line, as: UTF8.self)
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The vectors as change batches, one per kind (`init(changesOf:)`): `_unchanged` carries the
    /// array vectors in turn, the column the kind's vectors.
    static func changeBatches(quoted: Bool) -> [(relation: RelationSchema, csv: [UInt8], expected: [[Field]])] {
        let arrays = vectors.filter { $0.kind == "textarray" }
        return vectorTypes.keys.sorted().map { kind in
            let relation = RelationSchema(table: QualifiedName(schema: "public", name: kind),
                                          columns: [column("id", "bigint"), column("x", vectorTypes[kind]!)], key: ["id"])
            var csv = "_op,_lsn,_seq,_unchanged,id,x\n"
            var expected: [[Field]] = []
            for (index, vector) in vectors.filter({ $0.kind == kind }).enumerated() {
                let array = arrays[index % arrays.count]
                csv += "U,\(field("16/B374D848", quoted: quoted)),\(index),\(field(array.text, quoted: quoted)),\(index),\(field(vector.text, quoted: quoted))\n"
                expected.append([.bytes(Array("U".utf8)), .bytes(Self.bytes(hex: "00000016b374d848")), .bytes(Self.int(Int64(index), bytes: 8)),
                                 .bytes(Self.bytes(hex: array.hex)), .bytes(Self.int(Int64(index), bytes: 8)), .bytes(Self.bytes(hex: vector.hex))])
            }
            // NULL in every column that may be.
            csv += "D,0/1,99,,-1,\n"
            expected.append([.bytes(Array("D".utf8)), .bytes(Self.bytes(hex: "0000000000000001")), .bytes(Self.int(99, bytes: 8)), .null,
                             .bytes(Self.int(-1, bytes: 8)), .null])
            return (relation, Array(csv.utf8), expected)
        }
    }

    static func int(_ value: Int64, bytes: Int) -> [UInt8] { (0..<bytes).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    func convertChanges(_ csv: [UInt8], relation: RelationSchema, chunk: Int = 1 << 20) throws -> [UInt8] {
        try convert(csv, with: try #require(CSVToBinaryTranscoder(changesOf: relation)), chunk: chunk)
    }

    @Test func everyNewKindGivesWhatTheServersSendFunctionGives() throws {
        #expect(Self.vectors.count > 80)
        for quoted in [false, true] {
            for batch in Self.changeBatches(quoted: quoted) {
                let rows = try tuples(try convertChanges(batch.csv, relation: batch.relation))
                #expect(rows.count == batch.expected.count)
                for (row, expected) in zip(rows, batch.expected) where row != expected {
                    Issue.record("\(batch.relation.table.name)\(quoted ? ", quoted" : ""): \(row) is not \(expected)")
                }
            }
        }
    }

    /// Several files in one COPY: the first without a trailer, the middle ones bare, the last
    /// without a header make one stream of all their tuples, in order; each file's header row is
    /// still checked.
    @Test func filesConvertedWithoutTheirFramingMakeOneStream() throws {
        let batches = Self.changeBatches(quoted: false).filter { $0.relation.table.name == "float8" }
        let relation = batches[0].relation
        let files = [batches[0].csv, Array("_op,_lsn,_seq,_unchanged,id,x\nI,0/2,1,,7,\n".utf8), batches[0].csv]
        for chunk in [1, 3, 1 << 20] {
            var stream: [UInt8] = []
            for (index, csv) in files.enumerated() {
                var transcoder = try #require(CSVToBinaryTranscoder(changesOf: relation))
                transcoder.writesFileHeader = index == 0
                transcoder.writesFileTrailer = index == files.count - 1
                stream += try convert(csv, with: transcoder, chunk: chunk)
            }
            let one = try tuples(try convertChanges(files[0], relation: relation))
            let rows = try tuples(stream)
            #expect(rows.count == 2 * one.count + 1)
            #expect(Array(rows.prefix(one.count)) == one && Array(rows.suffix(one.count)) == one, "chunks of \(chunk)")
            #expect(rows[one.count][4] == .bytes(Self.int(7, bytes: 8)))
        }
        var bare = try #require(CSVToBinaryTranscoder(changesOf: relation))
        bare.writesFileHeader = false
        bare.writesFileTrailer = false
        #expect(throws: CSVToBinaryTranscoder.Failure.header(expected: ChangeColumns.all + ["id", "x"], found: ["_op", "_lsn", "_seq", "_unchanged", "id", "y"])) {
            try convert(Array("_op,_lsn,_seq,_unchanged,id,y\nI,0/2,1,,7,\n".utf8), with: bare, chunk: 4)
        }
    }

    @Test func everyChunkingOfTheNewKindsGivesTheSameStream() throws {
        for quoted in [false, true] {
            for batch in Self.changeBatches(quoted: quoted) {
                let whole = try convertChanges(batch.csv, relation: batch.relation)
                for chunk in 1...batch.csv.count where try convertChanges(batch.csv, relation: batch.relation, chunk: chunk) != whole {
                    Issue.record("\(batch.relation.table.name): chunks of \(chunk) bytes give another stream")
                    break
                }
            }
        }
    }

    @Test func whatTheNewKindsOutputFunctionsCannotHaveWrittenIsRefused() throws {
        let refused: [String: [String]] = [
            "float4": ["inf", "nan", "1,5", " 1", "1 ", "0x1p3", "1e39", "1e-50", "", "1E5", "Infinity ", "+Infinity"],
            "float8": ["inf", "1e400", "-1e400", "1e-400", "0x10", "1.5f", "1e", String(repeating: "1", count: 64)],
            "numeric": ["1e5", "+1", ".5", "1.", "--1", "1.2.3", "NaN ", "nan", "- 1", "1,5", "Inf", "0." + String(repeating: "1", count: 16384)],
            "date": ["2023-02-29", "2000-13-01", "2000-00-10", "2000-01-32", "2000-1-01", "200-01-01", "0000-01-01 BC", "20000101",
                     "2000-01-01 00:00:00", "Infinity", "2000-01-01 AD", "12345678-01-01"],
            "timestamp": ["2000-01-01 00:00", "2000-01-01 24:00:00", "2000-01-01 00:60:00", "2000-01-01 00:00:60", "2000-01-01T00:00:00",
                          "2000-01-01 00:00:00.1234567", "2000-01-01 00:00:00.", "2000-01-01 00:00:00+00", "2000-01-01"],
            "timestamptz": ["2000-01-01 00:00:00", "2000-01-01 00:00:00+5", "2000-01-01 00:00:00 +00", "2000-01-01 00:00:00+00:",
                            "2000-01-01 00:00:00+00:60", "2000-01-01 00:00:00Z", "2000-01-01 00:00:00+00 AD", "2000-01-01 00:00:00+00:00:00:00"],
            "time": ["24:00:01", "24:00:00.000001", "25:00:00", "1:00:00", "12:00", "12:00:00+00"],
            "bytea": ["\\x0", "\\xzz", "abc", "x00", "\\X00", "\\x00 01"],
            "lsn": ["0/", "/0", "123456789/0", "0/123456789", "G/0", "0-0", "0//0", "0/0/0"],
        ]
        func failure(_ csv: String, _ relation: RelationSchema) -> CSVToBinaryTranscoder.Failure? {
            do {
                _ = try convertChanges(Array(csv.utf8), relation: relation)
                return nil
            } catch let failure as CSVToBinaryTranscoder.Failure {
                return failure
            } catch {
                return nil
            }
        }
        for (kind, texts) in refused {
            let relation = RelationSchema(table: QualifiedName(schema: "public", name: kind),
                                          columns: [Self.column("id", "bigint"), Self.column("x", Self.vectorTypes[kind]!)], key: ["id"])
            // A row the kind takes, then the refused text: the failure names the second row.
            let taken = Self.field(try #require(Self.vectors.last { $0.kind == kind }).text, quoted: false)
            for text in texts {
                for quoted in [false, true] where !(text.isEmpty && !quoted) {
                    let csv = "_op,_lsn,_seq,_unchanged,id,x\nI,0/1,1,,1,\(taken)\nI,0/1,2,,2,\(Self.field(text, quoted: quoted))\n"
                    let found = failure(csv, relation)
                    if found != .badValue(line: 3, column: "x") {
                        Issue.record("\(kind) took \(quoted ? "quoted " : "")\"\(text)\": \(String(describing: found))")
                    }
                }
            }
        }
        // The metadata columns: an LSN and a sequence in their forms, `_unchanged` as ChangeRowEncoder writes it.
        let relation = RelationSchema(table: QualifiedName(schema: "public", name: "t"), columns: [Self.column("id", "bigint")], key: ["id"])
        for (row, column) in [("I,0/1/2,1,,1", "_lsn"), ("I,0/1,x,,1", "_seq"), ("I,0/1,1,{doc},1", "_unchanged"),
                              ("I,0/1,1,\"{\"\"doc\"\"\",1", "_unchanged"), ("I,0/1,1,\"{\"\"doc\"\",}\",1", "_unchanged"),
                              ("I,0/1,1,\"{\"\"a\\\"\"}\",1", "_unchanged"), ("I,0/1,1,\"{\"\"a\"\" ,\"\"b\"\"}\",1", "_unchanged"),
                              ("I,0/1,1,\"[1:1]={\"\"a\"\"}\",1", "_unchanged"), ("I,0/1,1,\"{{\"\"a\"\"}}\",1", "_unchanged")] {
            #expect(failure("_op,_lsn,_seq,_unchanged,id\n" + row + "\n", relation) == .badValue(line: 2, column: column), "\(row)")
        }
        // A batch's header names the metadata columns first.
        #expect(failure("id\n1\n", relation) == .header(expected: ["_op", "_lsn", "_seq", "_unchanged", "id"], found: nil))
    }

    /// The change batches with every change an insert, as `init(insertsOf:)` converts them.
    static func insertBatches(quoted: Bool) -> [(relation: RelationSchema, csv: [UInt8], expected: [[Field]])] {
        changeBatches(quoted: quoted).map { batch in
            let lines = String(decoding: batch.csv, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
            let csv = ([String(lines[0])] + lines.dropFirst().map { $0.isEmpty ? "" : "I" + $0.dropFirst() }).joined(separator: "\n")
            // `_op`, `_seq` and `_unchanged` left out: `_lsn`, then the columns.
            return (batch.relation, Array(csv.utf8), batch.expected.map { [$0[1]] + $0.dropFirst(4) })
        }
    }

    func convertInserts(_ csv: [UInt8], relation: RelationSchema, chunk: Int = 1 << 20) throws -> [UInt8] {
        try convert(csv, with: try #require(CSVToBinaryTranscoder(insertsOf: relation)), chunk: chunk)
    }

    /// Inserts COPYed straight into STG: every kind, in every chunking from one byte up, gives the
    /// tuples of the change batch's conversion without `_op`, `_seq` and `_unchanged`.
    @Test func insertsKeepOnlyTheLSNOfTheirMetadata() throws {
        for quoted in [false, true] {
            for batch in Self.insertBatches(quoted: quoted) {
                let whole = try convertInserts(batch.csv, relation: batch.relation)
                let rows = try tuples(whole)
                #expect(rows == batch.expected, "\(batch.relation.table.name)\(quoted ? ", quoted" : "")")
                for chunk in 1...batch.csv.count where try convertInserts(batch.csv, relation: batch.relation, chunk: chunk) != whole {
                    Issue.record("\(batch.relation.table.name): chunks of \(chunk) bytes give another stream")
                    break
                }
            }
        }
    }

    /// A file taken for inserts holds nothing else: any other `_op` stops it as a bad value,
    /// naming its line; `_lsn`, the field count and the header are checked as ever.
    @Test func anythingButAnInsertIsRefusedAsOne() throws {
        let relation = RelationSchema(table: QualifiedName(schema: "public", name: "t"), columns: [Self.column("id", "bigint")], key: ["id"])
        func failure(_ rows: String) -> CSVToBinaryTranscoder.Failure? {
            do {
                _ = try convertInserts(Array(("_op,_lsn,_seq,_unchanged,id\nI,0/1,1,,1\n" + rows).utf8), relation: relation)
                return nil
            } catch let failure as CSVToBinaryTranscoder.Failure {
                return failure
            } catch {
                return nil
            }
        }
        for op in ["U", "D", "T", "\"I\"", "II", "", "i", "I "] {
            #expect(failure("\(op),0/2,2,,2\n") == .badValue(line: 3, column: "_op"), "\(op)")
        }
        #expect(failure("I,0/2/3,2,,2\n") == .badValue(line: 3, column: "_lsn"))
        #expect(failure("I,0/2,2,,2,3\n") == .fieldCount(line: 3, fields: 5, expected: 5))
        #expect(failure("I,0/2,2,,2\n") == nil)
        var transcoder = try #require(CSVToBinaryTranscoder(insertsOf: relation))
        #expect(throws: CSVToBinaryTranscoder.Failure.header(expected: ChangeColumns.all + ["id"], found: ["_op", "_lsn", "_seq", "_unchanged", "key"])) {
            try Array("_op,_lsn,_seq,_unchanged,key\nI,0/1,1,,1\n".utf8).withUnsafeBytes { try transcoder.transcode($0) { _ in } }
        }
    }

    /// Change batches of inserts and updates that keep no stored value (`_unchanged` empty), as
    /// `init(upsertsOf:)` converts them: `_lsn`, then the columns; `init(keysOf:)`: `_lsn`, then the key.
    static func upsertBatches(quoted: Bool) -> [(relation: RelationSchema, csv: [UInt8], rows: [[Field]], keys: [[Field]])] {
        vectorTypes.keys.sorted().map { kind in
            let relation = RelationSchema(table: QualifiedName(schema: "public", name: kind),
                                          columns: [column("x", vectorTypes[kind]!), column("id", "bigint")], key: ["id"])
            var csv = "_op,_lsn,_seq,_unchanged,x,id\n"
            var rows: [[Field]] = [], keys: [[Field]] = []
            let lsn = Field.bytes(Self.bytes(hex: "00000016b374d848"))
            for (index, vector) in vectors.filter({ $0.kind == kind }).enumerated() {
                csv += "\(index % 2 == 0 ? "I" : "U"),\(field("16/B374D848", quoted: quoted)),\(index),,\(field(vector.text, quoted: quoted)),\(index)\n"
                rows.append([lsn, .bytes(Self.bytes(hex: vector.hex)), .bytes(Self.int(Int64(index), bytes: 8))])
                keys.append([lsn, .bytes(Self.int(Int64(index), bytes: 8))])
            }
            csv += "U,16/B374D848,99,,,-1\n"
            rows.append([lsn, .null, .bytes(Self.int(-1, bytes: 8))])
            keys.append([lsn, .bytes(Self.int(-1, bytes: 8))])
            return (relation, Array(csv.utf8), rows, keys)
        }
    }

    /// Inserts and updates COPYed straight into STG, and their keys before them: every kind, in
    /// every chunking from one byte up, gives the same tuples.
    @Test func upsertsKeepOnlyTheLSNAndTheirKeysOnlyTheKey() throws {
        for quoted in [false, true] {
            for batch in Self.upsertBatches(quoted: quoted) {
                let name = "\(batch.relation.table.name)\(quoted ? ", quoted" : "")"
                for (transcoder, expected) in [(CSVToBinaryTranscoder(upsertsOf: batch.relation), batch.rows),
                                               (CSVToBinaryTranscoder(keysOf: batch.relation), batch.keys)] {
                    let transcoder = try #require(transcoder)
                    let whole = try convert(batch.csv, with: transcoder, chunk: 1 << 20)
                    #expect(try tuples(whole) == expected, "\(name)")
                    for chunk in 1...batch.csv.count where try convert(batch.csv, with: transcoder, chunk: chunk) != whole {
                        Issue.record("\(name): chunks of \(chunk) bytes give another stream")
                        break
                    }
                }
            }
        }
    }

    /// The keys of a key of several columns come in the relation's order, whatever the key's.
    @Test func aKeyOfSeveralColumnsComesInTheRelationsOrder() throws {
        let relation = RelationSchema(table: QualifiedName(schema: "public", name: "t"),
                                      columns: [Self.column("a", "text"), Self.column("note", "text"), Self.column("b", "integer")], key: ["b", "a"])
        #expect(DirectInsert.keyColumns(of: relation) == ["a", "b"])
        let csv = Array("_op,_lsn,_seq,_unchanged,a,note,b\nU,0/1,1,,\"x,y\",n,7\n".utf8)
        #expect(try tuples(try convert(csv, with: try #require(CSVToBinaryTranscoder(keysOf: relation)), chunk: 3))
                == [[.bytes(Self.bytes(hex: "0000000000000001")), .bytes(Array("x,y".utf8)), .bytes(Self.int(7, bytes: 4))]])
    }

    /// A file taken for inserts and updates holds nothing else, and no change in it keeps a stored
    /// value: anything else stops it as a bad value, in the keys' pass as in the rows'.
    @Test func anythingButAnUpsertThatKeepsNoValueIsRefused() throws {
        let relation = RelationSchema(table: QualifiedName(schema: "public", name: "t"), columns: [Self.column("id", "bigint")], key: ["id"])
        for make in [CSVToBinaryTranscoder.init(upsertsOf:), CSVToBinaryTranscoder.init(keysOf:)] {
            func failure(_ rows: String) -> CSVToBinaryTranscoder.Failure? {
                do {
                    _ = try convert(Array(("_op,_lsn,_seq,_unchanged,id\nI,0/1,1,,1\nU,0/1,2,,2\n" + rows).utf8), with: try #require(make(relation)), chunk: 5)
                    return nil
                } catch let failure as CSVToBinaryTranscoder.Failure {
                    return failure
                } catch {
                    return nil
                }
            }
            for op in ["D", "T", "\"U\"", "\"I\"", "UU", "IU", "", "u", "U "] {
                #expect(failure("\(op),0/2,3,,3\n") == .badValue(line: 4, column: "_op"), "\(op)")
            }
            for unchanged in ["\"{\"\"doc\"\"}\"", "\"\"", "x"] {
                #expect(failure("U,0/2,3,\(unchanged),3\n") == .badValue(line: 4, column: "_unchanged"), "\(unchanged)")
            }
            #expect(failure("U,0/2/3,3,,3\n") == .badValue(line: 4, column: "_lsn"))
            #expect(failure("U,0/2,3,,3,4\n") == .fieldCount(line: 4, fields: 5, expected: 5))
            #expect(failure("U,0/2,3,,3\n") == nil)
        }
    }

    @Test func typeModifiersKeepTheKindAndArraysDoNot() {
        let kinds = RelationSchema(table: QualifiedName(schema: "public", name: "t"),
                                   columns: ["numeric(12,2)", "timestamp(3) with time zone", "timestamp(0) without time zone", "time(6) without time zone",
                                             "character varying(7)", "character(2)", "json", "jsonb", "pg_lsn", "bytea", "real", "date"]
                                    .enumerated().map { Self.column("c\($0.offset)", $0.element) }, key: ["c0"]).binaryKinds
        #expect(kinds == [8, 11, 10, 12, 0, 0, 0, 14, 15, 13, 6, 9])
    }

    /// A record larger than the output buffer's first size grows it, in any chunking; records
    /// after it still convert.
    @Test func aRecordLargerThanTheOutputBufferConverts() throws {
        let size = CSVToBinaryTranscoder.initialOutputBytes + 12345
        let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7919 >> 3) }
        let hex = "\\x" + bytes.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        let json = "{\"k\": \"" + String(repeating: "a,\\\"b", count: size / 6) + "\"}"
        let relation = RelationSchema(table: QualifiedName(schema: "public", name: "big"),
                                      columns: [Self.column("id", "bigint"), Self.column("b", "bytea"), Self.column("j", "jsonb")], key: ["id"])
        let csv = Array(("id,b,j\n1,\(hex),\(Self.field(json, quoted: false))\n2,\\x01,\"[]\"\n").utf8)
        let expected: [[Field]] = [[.bytes(Self.int(1, bytes: 8)), .bytes(bytes), .bytes([1] + Array(json.utf8))],
                                   [.bytes(Self.int(2, bytes: 8)), .bytes([1]), .bytes([1] + Array("[]".utf8))]]
        for chunk in [1 << 20, 65536, 4097, csv.count] {
            #expect(try tuples(try convert(csv, relation: relation, chunk: chunk)) == expected, "chunks of \(chunk)")
        }
    }
}
