import Metrics

/// The counters the stages report through swift-metrics. They cost nothing until a backend is
/// bootstrapped (`tributary run --metrics-port`).
public enum PipelineMetrics {
    public static func batchWritten(source: String, rows: Int, bytes: Int) {
        Counter(label: "tributary_batches_written_total", dimensions: [("source", source)]).increment()
        Counter(label: "tributary_rows_written_total", dimensions: [("source", source)]).increment(by: rows)
        Counter(label: "tributary_bytes_written_total", dimensions: [("source", source)]).increment(by: bytes)
    }

    /// One target transaction applied `batches` (more than one: merged together while catching up).
    public static func batchApplied(source: String, rows: Int, batches: Int = 1) {
        Counter(label: "tributary_batches_applied_total", dimensions: [("source", source)]).increment(by: batches)
        Counter(label: "tributary_apply_transactions_total", dimensions: [("source", source)]).increment()
        Counter(label: "tributary_rows_applied_total", dimensions: [("source", source)]).increment(by: rows)
    }

    /// A failure that was retried (transient) or stopped a part.
    public static func error(source: String, part: String) {
        Counter(label: "tributary_errors_total", dimensions: [("source", source), ("part", part)]).increment()
    }

    /// A BL model ran: its rows written, by kind.
    public static func transformRan(model: String, inserted: Int, updated: Int, removed: Int) {
        Counter(label: "tributary_bl_runs_total", dimensions: [("model", model)]).increment()
        for (kind, count) in [("inserted", inserted), ("updated", updated), ("removed", removed)] where count > 0 {
            Counter(label: "tributary_bl_rows_total", dimensions: [("model", model), ("kind", kind)]).increment(by: count)
        }
    }

    public static func transformFailed(model: String) {
        Counter(label: "tributary_bl_errors_total", dimensions: [("model", model)]).increment()
    }
}
