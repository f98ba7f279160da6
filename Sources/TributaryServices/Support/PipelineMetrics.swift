import Metrics

/// The counters the stages report through swift-metrics. They cost nothing until a backend is
/// bootstrapped (`tributary run --metrics-port`).
public enum PipelineMetrics {
    public static func batchWritten(source: String, rows: Int, bytes: Int) {
        Counter(label: "tributary_batches_written_total", dimensions: [("source", source)]).increment()
        Counter(label: "tributary_rows_written_total", dimensions: [("source", source)]).increment(by: rows)
        Counter(label: "tributary_bytes_written_total", dimensions: [("source", source)]).increment(by: bytes)
    }

    public static func batchApplied(source: String, rows: Int) {
        Counter(label: "tributary_batches_applied_total", dimensions: [("source", source)]).increment()
        Counter(label: "tributary_rows_applied_total", dimensions: [("source", source)]).increment(by: rows)
    }

    /// A failure that was retried (transient) or stopped a part.
    public static func error(source: String, part: String) {
        Counter(label: "tributary_errors_total", dimensions: [("source", source), ("part", part)]).increment()
    }
}
