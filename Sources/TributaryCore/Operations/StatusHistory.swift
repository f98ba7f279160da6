import Foundation

/// The last hour of each source's lag, kept in the process for the status page's chart: one sample
/// per status reading, older ones dropped. Pure: readings and their times come in; nothing is
/// stored anywhere else, so a page opened after a restart starts with an empty chart.
public struct StatusHistory: Sendable, Equatable {
    public struct Sample: Sendable, Equatable, Codable {
        public var at: Date
        public var lagSeconds: Double?
        public var sourceLagBytes: Int?
        public var changesPerSecond: Double
        public var stagedBatches: Int

        public init(at: Date, lagSeconds: Double?, sourceLagBytes: Int?, changesPerSecond: Double, stagedBatches: Int) {
            self.at = at
            self.lagSeconds = lagSeconds
            self.sourceLagBytes = sourceLagBytes
            self.changesPerSecond = changesPerSecond
            self.stagedBatches = stagedBatches
        }
    }

    /// How far back samples are kept.
    public let span: TimeInterval
    /// Samples closer together than this replace the newest one (a burst of readings on demand
    /// does not crowd the hour out).
    public let spacing: TimeInterval
    public private(set) var samples: [String: [Sample]] = [:]

    public init(span: TimeInterval = 3600, spacing: TimeInterval = 5) {
        self.span = span
        self.spacing = spacing
    }

    /// Takes one reading's sample of `source`; drops what is older than `span` before it.
    public mutating func record(_ sample: Sample, source: String) {
        var series = samples[source] ?? []
        // The newest sample moves with each reading until it is `spacing` past the one before it;
        // then it stays, and the next reading is the newest.
        if series.count > 1, series[series.count - 1].at.timeIntervalSince(series[series.count - 2].at) < spacing {
            series[series.count - 1] = sample
        } else {
            series.append(sample)
        }
        let oldest = sample.at.addingTimeInterval(-span)
        if let keep = series.firstIndex(where: { $0.at >= oldest }), keep > 0 { series.removeFirst(keep) }
        samples[source] = series
    }

    /// Sources no longer read (taken out of the configuration) go.
    public mutating func keep(only sources: Set<String>) {
        samples = samples.filter { sources.contains($0.key) }
    }
}
