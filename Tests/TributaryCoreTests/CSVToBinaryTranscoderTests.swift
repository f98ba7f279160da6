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
        var transcoder = try #require(CSVToBinaryTranscoder(relation: relation))
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
        for type in ["numeric(12,2)", "integer[]", "character varying(5)[]", "timestamp with time zone", "jsonb", "\"char\"", "bytea", "double precision"] {
            let relation = RelationSchema(table: Self.relation.table, columns: [Self.column("id", "bigint"), Self.column("x", type)], key: ["id"])
            #expect(relation.binaryKinds == nil, "\(type)")
            #expect(CSVToBinaryTranscoder(relation: relation) == nil)
        }
    }
}
