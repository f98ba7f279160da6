/// Appends many small records to a file with few system calls.
public final class BufferedFileOutput {
    private let output: FileOutput
    private var buffer: [UInt8] = []
    private let capacity: Int
    public private(set) var bytesWritten = 0

    public init(creating path: String, capacity: Int = 1 << 20) throws {
        output = try FileOutput(creating: path)
        self.capacity = capacity
        buffer.reserveCapacity(capacity)
    }

    public func append(_ bytes: some Collection<UInt8>) throws {
        buffer.append(contentsOf: bytes)
        bytesWritten += bytes.count
        if buffer.count >= capacity { try flush() }
    }

    /// Bytes of at least the buffer's capacity go to the file directly, not through the buffer,
    /// which would grow to hold them (a spilled message with a value of hundreds of megabytes).
    public func append(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count >= capacity else {
            buffer.append(contentsOf: bytes)
            bytesWritten += bytes.count
            if buffer.count >= capacity { try flush() }
            return
        }
        try flush()
        try output.write(bytes)
        bytesWritten += bytes.count
    }

    public func flush() throws {
        try output.write(buffer)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes without fsync: for scratch files a crash makes worthless anyway.
    public func close() throws {
        try flush()
        try output.close()
    }
}
