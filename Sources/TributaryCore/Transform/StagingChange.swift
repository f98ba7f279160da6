/// What the applier says on the STG channel (`tributary_stg`): `<source>` or `<source>;backlog=<n>`.
public struct StagingChange: Sendable, Equatable {
    public var source: String
    public var backlog: Int

    public var payload: String { backlog > 0 ? "\(source);backlog=\(backlog)" : source }

    public init(source: String, backlog: Int) {
        self.source = source
        self.backlog = backlog
    }

    public init(payload: String) {
        let parts = payload.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)
        source = String(parts[0])
        backlog = parts.count > 1 && parts[1].hasPrefix("backlog=") ? Int(parts[1].dropFirst("backlog=".count)) ?? 0 : 0
    }
}
