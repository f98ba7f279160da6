/// CSV exactly as PostgreSQL's `COPY … (FORMAT csv)` reads it back: NULL is an unquoted empty
/// field, an empty string is `""`, and a field is quoted when it holds a comma, quote, CR or LF,
/// or is `\.` (which alone on a line would end the data).
public enum CSVEncoding {
    public static func appendField(_ value: UnsafeRawBufferPointer?, to line: inout [UInt8]) {
        guard let value else { return }
        if value.isEmpty || needsQuotes(value) {
            line.append(UInt8(ascii: "\""))
            for byte in value {
                if byte == UInt8(ascii: "\"") { line.append(byte) }
                line.append(byte)
            }
            line.append(UInt8(ascii: "\""))
        } else {
            line.append(contentsOf: value)
        }
    }

    public static func appendField(_ text: String?, to line: inout [UInt8]) {
        guard var text else { return }
        text.withUTF8 { appendField(UnsafeRawBufferPointer($0), to: &line) }
    }

    private static func needsQuotes(_ value: UnsafeRawBufferPointer) -> Bool {
        if value.count == 2 && value[0] == UInt8(ascii: "\\") && value[1] == UInt8(ascii: ".") { return true }
        for byte in value where byte == UInt8(ascii: ",") || byte == UInt8(ascii: "\"") || byte == 10 || byte == 13 {
            return true
        }
        return false
    }
}
