import Testing
@testable import TributaryCore

/// The replicator's CSV writer against the rule it follows, byte for byte.
@Suite struct CSVEncodingTests {
    /// The rule, plainly: quoted when empty, `\.`, or holding a comma, quote, CR or LF; quotes doubled.
    static func reference(_ value: [UInt8]) -> [UInt8] {
        let special: Set<UInt8> = [UInt8(ascii: ","), UInt8(ascii: "\""), 10, 13]
        guard value.isEmpty || value == Array("\\.".utf8) || value.contains(where: special.contains) else { return value }
        return [UInt8(ascii: "\"")] + value.flatMap { $0 == UInt8(ascii: "\"") ? [$0, $0] : [$0] } + [UInt8(ascii: "\"")]
    }

    /// Each special byte at every position of values from 0 to 40 bytes (the scan takes 16 at a
    /// time, then the rest one by one), alone and with a quote elsewhere.
    @Test func everySpecialByteAtEveryPositionIsQuoted() {
        for length in 0...40 {
            let plain = (0..<length).map { UInt8(ascii: "a") + UInt8($0 % 26) }
            var values = [plain]
            for position in 0..<length {
                for special in [UInt8(ascii: ","), UInt8(ascii: "\""), 10, 13, UInt8(ascii: "\\"), 0xF0] {
                    var value = plain
                    value[position] = special
                    values.append(value)
                    value[length - 1 - position] = UInt8(ascii: "\"")
                    values.append(value)
                }
            }
            for value in values {
                var line: [UInt8] = [UInt8(ascii: "x")]
                value.withUnsafeBytes { CSVEncoding.appendField($0, to: &line) }
                #expect(line == [UInt8(ascii: "x")] + Self.reference(value), "\(value)")
            }
        }
        var line: [UInt8] = []
        CSVEncoding.appendField("\\.", to: &line)
        CSVEncoding.appendField(nil as String?, to: &line)
        CSVEncoding.appendField("", to: &line)
        #expect(line == Array("\"\\.\"\"\"".utf8), "`\\.` and the empty string quoted, NULL nothing")
    }
}
