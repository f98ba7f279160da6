import CCSVTranscoder

/// Rewrites the staging store's CSV (PostgreSQL's `COPY … (FORMAT csv)` dialect: `,` between
/// fields, `"` quotes with `""` inside, NULL as an unquoted empty field) into `COPY`'s text format
/// (tab between fields, backslash escapes, NULL as `\N`), streaming and in any chunking.
///
/// Why: the target parses text format markedly faster than CSV (about a fifth less server CPU on
/// the benchmark's data), and on a busy target that CPU is the whole cost of a snapshot load. The
/// staged files stay CSV, the format every other reader of the OCI layer expects; only the bytes
/// sent to the target change. Fields are read as PostgreSQL's CSV reader reads them (a quote
/// anywhere in a field opens a quoted section), so the target stores exactly the values it would
/// have stored from the CSV.
///
/// The byte loop is C (`CCSVTranscoder`), to scan with SIMD. UTF-8 needs no care: every byte it
/// looks at is ASCII, and no byte of a multi-byte sequence is.
public struct CSVToTextTranscoder: COPYRewriter {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unterminatedQuote(line: Int)
        case strayCarriageReturn(line: Int)

        public var description: String {
            switch self {
            case .unterminatedQuote(let line): return "CSV line \(line): a quoted field is not closed before the data ends"
            case .strayCarriageReturn(let line): return "CSV line \(line): carriage return outside quotes and not before a line feed"
            }
        }
    }

    private var state = tributary_csv_state(quoted: 0, quote_open: 0, carriage_return: 0, field_blank: 1, line_started: 0, lines: 0)
    private var output: [UInt8] = []

    /// Lines completed so far.
    public var lines: Int { Int(state.lines) }

    public init() {}

    /// Transcodes `input` and hands what it produced to `sink`. A line may span chunks: the state
    /// carries over.
    public mutating func transcode(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard !input.isEmpty else { return }
        let needed = tributary_csv_text_capacity(input.count)
        if output.count < needed { output = [UInt8](repeating: 0, count: needed) }
        let produced = output.withUnsafeMutableBufferPointer { buffer in
            tributary_csv_to_text(&state, input.baseAddress!.assumingMemoryBound(to: UInt8.self), input.count, buffer.baseAddress!)
        }
        guard produced >= 0 else { throw Failure.strayCarriageReturn(line: lines + 1) }
        try output.withUnsafeBytes { try sink(UnsafeRawBufferPointer(rebasing: $0[0..<produced])) }
    }

    /// Call at the end of the data: finishes a last line without its line feed, and throws if the
    /// data ended inside quotes.
    public mutating func finish(sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        if state.quote_open != 0 {
            // A closing quote was the very last byte.
            state.quote_open = 0
            state.quoted = 0
        }
        if state.quoted != 0 { throw Failure.unterminatedQuote(line: lines + 1) }
        if state.carriage_return != 0 { throw Failure.strayCarriageReturn(line: lines + 1) }
        // A last line without its line feed (PostgreSQL accepts one): end it here.
        guard state.field_blank == 0 || state.line_started != 0 else { return }
        let tail: [UInt8] = state.field_blank != 0 ? [0x5C, 0x4E, 0x0A] : [0x0A]
        state.lines += 1
        state.field_blank = 1
        state.line_started = 0
        try tail.withUnsafeBytes { try sink($0) }
    }
}
