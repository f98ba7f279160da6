import TributaryPostgres
import TributaryStorage

/// Failures a long-running part waits out with backoff instead of stopping: a server restarting
/// or a connection cut, the staging store unreachable or overloaded after all its attempts, the
/// work directory or its disk full, a batch loaded ahead lost to a restart of the target. Each
/// ends without anyone changing tributary's configuration.
enum TemporaryFailure {
    static func matches(_ error: any Error) -> Bool {
        switch error {
        case let error as PostgresError: return error.isTransient || error.kind == .connectionFailed
        case let error as StorageError: return error.isLackOfSpace
        case let error as OCIError: return error.isTransient
        case is PreloadedBatchLost: return true
        default: return false
        }
    }

    /// Failures of the staging store or the work directory only (the database kinds have their own handling).
    static func isStorage(_ error: any Error) -> Bool {
        !(error is PostgresError) && matches(error)
    }
}
