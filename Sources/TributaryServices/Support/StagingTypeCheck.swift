import Synchronization
import TributaryCore
import TributaryPostgres

/// The column types a manifest declares, checked before any goes into DDL on the target: each must
/// be a well-formed type name (`StagingTypeName`) that the target parses as a type. Whoever can write
/// to the staging store can then at worst make the applier refuse a batch, never run SQL with it.
enum StagingTypeCheck {
    /// Types the target has confirmed, for the life of the process.
    private static let confirmed = Mutex<Set<String>>([])

    static func validate(_ relations: [RelationSchema], manifest: String, on connection: isolated PostgresConnection) throws {
        for type in Set(relations.flatMap { $0.columns.map(\.stagingType) }) where !confirmed.withLock({ $0.contains(type) }) {
            var known = false
            if StagingTypeName.isWellFormed(type) {
                // A name the grammar rejects raises; one it parses but does not know gives NULL.
                known = (try? connection.query("SELECT to_regtype($1) IS NOT NULL", [type]).scalar(Bool.self)) ?? false
            }
            guard known else {
                throw TributaryError(.corrupt, """
                    \(manifest) declares a column type "\(type)" that is not a type the target knows: \
                    the staging store may have been written by something other than tributary; nothing of it was applied
                    """)
            }
            confirmed.withLock { _ = $0.insert(type) }
        }
    }
}
