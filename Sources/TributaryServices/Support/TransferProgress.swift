import Synchronization

/// Live counters of a running snapshot or load, read by whatever shows progress. Writers update
/// them per row, so they are lock-free atomics.
public final class TransferProgress: Sendable {
    public final class Table: Sendable {
        public let name: String
        public let estimatedRows: Int
        public let estimatedBytes: Int
        let rowCounter = Atomic<Int>(0)
        let byteCounter = Atomic<Int>(0)
        let remainingCounter: Atomic<Int>

        init(name: String, estimatedRows: Int, estimatedBytes: Int, units: Int) {
            self.name = name
            self.estimatedRows = estimatedRows
            self.estimatedBytes = estimatedBytes
            remainingCounter = Atomic(units)
        }

        public var rows: Int { rowCounter.load(ordering: .relaxed) }
        public var bytes: Int { byteCounter.load(ordering: .relaxed) }
        public var isDone: Bool { remainingCounter.load(ordering: .relaxed) == 0 }

        public func add(rows: Int, bytes: Int) {
            rowCounter.add(rows, ordering: .relaxed)
            byteCounter.add(bytes, ordering: .relaxed)
        }

        /// Returns how many units remain.
        @discardableResult
        public func finishUnit() -> Int { remainingCounter.subtract(1, ordering: .acquiringAndReleasing).newValue }
    }

    /// What is moving: "snapshot qvp", "load qvp".
    public let title: String
    public let tables: [Table]
    public let startedAt = ContinuousClock.now

    public init(title: String, tables: [(name: String, estimatedRows: Int, estimatedBytes: Int, units: Int)]) {
        self.title = title
        self.tables = tables.map { Table(name: $0.name, estimatedRows: $0.estimatedRows, estimatedBytes: $0.estimatedBytes, units: $0.units) }
    }

    public var rows: Int { tables.reduce(0) { $0 + $1.rows } }
    public var bytes: Int { tables.reduce(0) { $0 + $1.bytes } }
    public var isDone: Bool { tables.allSatisfy(\.isDone) }
}
