import TributaryCore

/// Writes gzip to a local file while counting rows and bytes and hashing the compressed output:
/// everything a manifest needs about the file, in one pass.
public final class GzipFileWriter {
    public struct Summary: Sendable {
        public var bytes: Int
        public var uncompressedBytes: Int
        public var sha256: String
    }

    public let path: String
    private let output: FileOutput
    private let encoder: GzipEncoder
    private let hasher = SHA256Hasher()
    /// Small writes are gathered before deflate: deflate per row costs far more.
    private var pending: [UInt8] = []
    private let pendingMax = 256 << 10
    /// A write at least this large is compressed without being gathered first.
    private let directMin = 64 << 10
    public private(set) var uncompressedBytes = 0
    private var compressedBytes = 0

    public init(path: String, level: Int) throws {
        self.path = path
        output = try FileOutput(creating: path)
        encoder = GzipEncoder(level: level)
        pending.reserveCapacity(pendingMax)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        uncompressedBytes += bytes.count
        if pending.isEmpty && bytes.count >= directMin {
            // Already a large block: compress it where it is.
            try encoder.compress(bytes, sink: emit)
            return
        }
        pending.append(contentsOf: bytes)
        if pending.count >= pendingMax { try flushPending() }
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    /// Completes the gzip stream and makes the file durable; with `sync: false` only closes it,
    /// for a caller that syncs it later (`StagingStore.put(files:)`, many files at once).
    public func finish(sync: Bool = true) throws -> Summary {
        try flushPending()
        try encoder.finish(sink: emit)
        if sync { try output.syncAndClose() } else { try output.close() }
        return Summary(bytes: compressedBytes, uncompressedBytes: uncompressedBytes, sha256: hasher.finalizeHex())
    }

    private func flushPending() throws {
        try pending.withUnsafeBytes { try encoder.compress($0, sink: emit) }
        pending.removeAll(keepingCapacity: true)
    }

    private func emit(_ chunk: UnsafeRawBufferPointer) throws {
        hasher.update(chunk)
        compressedBytes += chunk.count
        try output.write(chunk)
    }
}

/// Reads a gzip file as the manifest describes it: decompresses to `sink` while checking size and
/// SHA-256 of the stored bytes, and throws before returning if either differs or the stream is cut.
public enum GzipFileReader {
    public static func read(path: String, key: String, expected: StagedFile?,
                            sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let decoder = GzipDecoder()
        let hasher = SHA256Hasher()
        var size = 0
        do {
            try FileInput(path: path).forEachChunk { chunk in
                hasher.update(chunk)
                size += chunk.count
                try decoder.decompress(chunk, sink: sink)
            }
            try decoder.finish()
        } catch let failure as GzipDecoder.Failure {
            throw StorageError.corrupt(key: key, reason: failure.description)
        }
        guard let expected else { return }
        if size != expected.bytes { throw StorageError.sizeMismatch(key: key, expected: expected.bytes, actual: size) }
        let digest = hasher.finalizeHex()
        if digest != expected.sha256 { throw StorageError.checksumMismatch(key: key, expected: expected.sha256, actual: digest) }
    }

    /// `read`, the staged CSV rewritten on the way by `rewriter` into a format the target's COPY
    /// parses with less CPU; CSV it cannot rewrite throws as a corrupt file. `progress` sees each
    /// inflated CSV chunk's size.
    public static func readForCOPY<Rewriter: COPYRewriter>(path: String, key: String, expected: StagedFile, rewriter: Rewriter,
                                                           progress: ((Int) -> Void)? = nil,
                                                           sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var rewriter = rewriter
        do {
            try read(path: path, key: key, expected: expected) { chunk in
                try rewriter.transcode(chunk, sink: sink)
                progress?(chunk.count)
            }
            try rewriter.finish(sink: sink)
        } catch let failure as Rewriter.Failure {
            throw StorageError.corrupt(key: key, reason: failure.description)
        }
    }
}
