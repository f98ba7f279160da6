import CISAL

/// Streaming gzip compression with ISA-L igzip: bytes in, gzip bytes out through `sink`. Pure
/// computation; the caller decides where the output goes.
///
/// igzip replaced zlib here because compression was most of the snapshot's client CPU: at level 1
/// it compresses the demo and benchmark data about 6× faster than zlib's level 1, into smaller files.
public final class GzipEncoder {
    /// igzip's levels, 0 (fastest) to 3 (smallest).
    public static let levels = 0...3

    private let state: UnsafeMutablePointer<tributary_deflate>
    /// Not zeroed: igzip writes what is read of it. A batch writes a stream per table, hundreds a
    /// second at 600 tables, and zeroing this buffer for each was 4% of `run`'s CPU (bench-breadth's
    /// profile); untouched, the pages of a small file's stream are never even faulted in.
    private let output: UnsafeMutableRawBufferPointer
    private var finished = false

    public init(level: Int) {
        precondition(Self.levels.contains(level), "gzip level \(level) is outside \(Self.levels)")
        guard let state = tributary_deflate_new(Int32(level)) else { fatalError("out of memory for a gzip stream") }
        self.state = state
        output = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 << 10, alignment: 16)
    }

    deinit {
        tributary_deflate_free(state)
        output.deallocate()
    }

    public func compress(_ input: UnsafeRawBufferPointer, sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        guard input.count > 0 else { return }
        try run(input, end: false, sink: sink)
    }

    /// Writes the trailer. No input may follow.
    public func finish(sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        precondition(!finished)
        finished = true
        try run(UnsafeRawBufferPointer(start: nil, count: 0), end: true, sink: sink)
    }

    private func run(_ input: UnsafeRawBufferPointer, end: Bool, sink: (UnsafeRawBufferPointer) throws -> Void) rethrows {
        precondition(input.count <= Int(UInt32.max))
        var offset = 0
        let capacity = UInt32(output.count)
        while true {
            var consumed: UInt32 = 0, produced: UInt32 = 0, done: Int32 = 0
            let status = tributary_deflate_run(state, input.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + offset },
                                               UInt32(input.count - offset), output.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                               capacity, end ? 1 : 0, &consumed, &produced, &done)
            precondition(status == COMP_OK, "isal_deflate failed: \(status)")
            offset += Int(consumed)
            if produced > 0 {
                try sink(UnsafeRawBufferPointer(start: output.baseAddress, count: Int(produced)))
            }
            // Without end of stream, igzip returns once the input is taken or the output is full.
            if end ? done != 0 : (offset == input.count && produced < capacity) { return }
        }
    }
}
