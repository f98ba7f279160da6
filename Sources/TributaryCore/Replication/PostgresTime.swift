import Foundation

/// PostgreSQL's wire timestamps: microseconds since 2000-01-01 00:00:00 UTC.
public enum PostgresTime {
    public static let epochOffsetSeconds: Double = 946_684_800

    public static func date(_ microseconds: Int64) -> Date {
        Date(timeIntervalSince1970: Double(microseconds) / 1_000_000 + epochOffsetSeconds)
    }

    public static func microseconds(_ date: Date) -> Int64 {
        Int64(((date.timeIntervalSince1970 - epochOffsetSeconds) * 1_000_000).rounded())
    }
}
