import Testing
import TributaryTestSupport
import TributaryCore

@Suite struct CSVToTextTranscoderTests {
    /// Transcodes `csv` fed in chunks of `chunk` bytes.
    func transcode(_ csv: [UInt8], chunk: Int = 1 << 20) throws -> [UInt8] {
        var transcoder = CSVToTextTranscoder()
        var text: [UInt8] = []
        for start in stride(from: 0, to: csv.count, by: chunk) {
            try csv[start..<min(start + chunk, csv.count)].withUnsafeBytes { try transcoder.transcode($0) { text.append(contentsOf: $0) } }
        }
        try transcoder.finish { text.append(contentsOf: $0) }
        return text
    }

    func transcode(_ csv: String, chunk: Int = 1 << 20) throws -> String {
        String(decoding: try transcode(Array(csv.utf8), chunk: chunk), as: UTF8.self)
    }

    @Test func valuesThatNeedADecision() throws {
        // NULL (unquoted empty) vs empty string (quoted); in text, \N vs nothing.
        #expect(try transcode("1,,\"\"\n") == "1\t\\N\t\n")
        #expect(try transcode(",\n") == "\\N\t\\N\n")
        // Quotes, commas, newlines and CR inside quotes; `""` is one quote.
        #expect(try transcode("\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\rlf\"\n") == "a,b\tsay \"hi\"\ttwo\\nlines\tcr\\rlf\n")
        // Text format's own specials are escaped: backslash, tab; `\N` as text is not NULL.
        #expect(try transcode("C:\\dir,a\tb,\\N,NULL\n") == "C:\\\\dir\ta\\tb\t\\\\N\tNULL\n")
        // PostgreSQL's reader opens a quoted section at a quote anywhere in a field.
        #expect(try transcode("ab\"c,d\"e,x\n") == "abc,de\tx\n")
        // CRLF line ends; a last line without its line feed is ended.
        #expect(try transcode("1,a\r\n2,b") == "1\ta\n2\tb\n")
        #expect(try transcode("1,") == "1\t\\N\n")
        #expect(try transcode("\"\"") == "\n")
        #expect(try transcode("") == "")
        // Multi-byte UTF-8 passes through untouched, also across a run of 16-byte blocks.
        let long = String(repeating: "grüße 😀 ", count: 40)
        #expect(try transcode("\(long),\"\(long)\"\n") == "\(long)\t\(long)\n")
    }

    @Test func damagedInputIsRefused() {
        #expect(throws: CSVToTextTranscoder.Failure.unterminatedQuote(line: 2)) { try transcode("1,a\n2,\"open\n") }
        #expect(throws: CSVToTextTranscoder.Failure.strayCarriageReturn(line: 1)) { try transcode("1,a\rb\n") }
        #expect(throws: CSVToTextTranscoder.Failure.strayCarriageReturn(line: 1)) { try transcode("1,a\r") }
    }

    /// Random rows written as PostgreSQL writes CSV (`CSVEncoding`), transcoded in random chunks,
    /// then read back as COPY's text format: every value, NULL or not, comes back the same.
    @Test(arguments: [1, 7, 16, 17, 4096])
    func randomRowsSurviveInAnyChunking(chunk: Int) throws {
        var random = SeededGenerator(seed: UInt64(chunk))
        let alphabet: [String] = ["a", "Z", "0", " ", "é", "😀", ",", "\"", "\n", "\r", "\t", "\\", "N", ".", "\r\n"]
        var rows: [[String?]] = []
        var csv: [UInt8] = []
        for _ in 0..<400 {
            let columns = Int.random(in: 1...6, using: &random)
            let row: [String?] = (0..<columns).map { _ in
                if Int.random(in: 0..<6, using: &random) == 0 { return nil }
                let length = Int.random(in: 0...(Int.random(in: 0..<4, using: &random) == 0 ? 60 : 8), using: &random)
                return (0..<length).map { _ in alphabet.randomElement(using: &random)! }.joined()
            }
            rows.append(row)
            for (index, value) in row.enumerated() {
                if index > 0 { csv.append(UInt8(ascii: ",")) }
                CSVEncoding.appendField(value, to: &csv)
            }
            csv.append(UInt8(ascii: "\n"))
        }
        let text = try transcode(csv, chunk: chunk)
        #expect(Self.readTextFormat(text) == rows)
    }

    /// COPY's text format, read as the server reads it (the escapes this test needs).
    static func readTextFormat(_ text: [UInt8]) -> [[String?]] {
        var rows: [[String?]] = []
        for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).dropLast() {
            rows.append(line.split(separator: UInt8(ascii: "\t"), omittingEmptySubsequences: false).map { field -> String? in
                if Array(field) == Array("\\N".utf8) { return nil }
                var value: [UInt8] = []
                var escaped = false
                for byte in field {
                    if escaped {
                        switch byte {
                        case UInt8(ascii: "n"): value.append(10)
                        case UInt8(ascii: "r"): value.append(13)
                        case UInt8(ascii: "t"): value.append(9)
                        default: value.append(byte)
                        }
                        escaped = false
                    } else if byte == UInt8(ascii: "\\") {
                        escaped = true
                    } else {
                        value.append(byte)
                    }
                }
                return String(decoding: value, as: UTF8.self)
            })
        }
        return rows
    }
}
