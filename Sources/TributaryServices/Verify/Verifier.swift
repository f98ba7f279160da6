import Logging
import TributaryCore

/// `tributary verify` (and the end of a drain): every source table against its STG table, compared
/// again while rows may still be in flight, then the key-indicator checks.
public struct Verifier: Sendable {
    public struct Outcome: Sendable {
        public var tables: [TableComparer.Comparison]
        public var checks: [IndicatorChecker.Outcome]
        /// Per object-sync mapping: what a pass would still copy or delete (nothing: all in place).
        public var objects: [ObjectSyncReport] = []

        public var matches: Bool { tables.allSatisfy(\.matches) && checks.allSatisfy(\.matches) && objects.allSatisfy(\.inPlace) }
    }

    public let endpoints: Endpoints
    /// For the object files: the whole configuration (stores, credentials); nil leaves them out.
    public let configuration: Configuration?
    public let logger: Logger?

    public init(endpoints: Endpoints, configuration: Configuration? = nil, logger: Logger? = nil) {
        self.endpoints = endpoints
        self.configuration = configuration
        self.logger = logger
    }

    /// - Parameter rechecks: a differing table is compared again up to this many times, a second
    ///   apart, and counts as matching only if it then does (changes in flight settle).
    public func verify(_ sources: [SourceConfiguration], tables: [String] = [], rechecks: Int) async throws -> Outcome {
        let comparer = TableComparer(endpoints: endpoints)
        var outcome = Outcome(tables: [], checks: [])
        for source in sources {
            var results = try await comparer.compare(source: source, tables: tables)
            var attempt = 0
            while attempt < rechecks, results.contains(where: { !$0.matches && $0.problem == nil }) {
                attempt += 1
                try await Task.sleep(for: .seconds(1))
                let again = try await comparer.compare(source: source, tables: results.filter { !$0.matches && $0.problem == nil }.map(\.table))
                for fresh in again {
                    if let index = results.firstIndex(where: { $0.table == fresh.table }) { results[index] = fresh }
                }
            }
            outcome.tables += results
            outcome.checks += try await IndicatorChecker(endpoints: endpoints).run(source: source)
        }
        if let configuration, !sources.flatMap(\.objects).isEmpty {
            // The plan's "all files are in place": every mapping's listings compared, name by name.
            outcome.objects = try await ObjectSyncService(configuration: configuration, endpoints: endpoints,
                                                          logger: logger ?? Logger(label: "tributary"))
                .verify(sources)
        }
        return outcome
    }
}
