/// Rewrites the staging store's CSV, streaming and in any chunking, into a format the target's
/// COPY parses with less CPU than CSV: `CSVToTextTranscoder` for any table, `CSVToBinaryTranscoder`
/// for tables whose every column has a binary form.
public protocol COPYRewriter {
    associatedtype Failure: Error & CustomStringConvertible

    /// Rewrites what `input` completes and hands it to `sink`; a line may span chunks.
    mutating func transcode(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Call at the end of the data: ends a last line without its line feed, or throws if the data
    /// ended inside one.
    mutating func finish(sink: (UnsafeRawBufferPointer) throws -> Void) throws
}
