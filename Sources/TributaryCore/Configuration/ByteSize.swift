import Foundation

/// Parses sizes and durations written for people: `256MiB`, `64 MB`, `1048576`; `1s`, `500ms`, `2m`.
public enum Quantity {
    public static func bytes(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        guard let number = Int(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let multipliers: [String: Int] = [
            "": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1_000_000,
            "mib": 1 << 20, "g": 1 << 30, "gb": 1_000_000_000, "gib": 1 << 30,
        ]
        guard let multiplier = multipliers[unit] else { return nil }
        return number * multiplier
    }

    /// A duration as the configuration spells it (`500ms`, `1s`, `2m`, `3h`, `7d`; a bare number is seconds).
    public static func duration(_ text: String) -> Duration? {
        milliseconds(text).map { .milliseconds($0) }
    }

    public static func milliseconds(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix { $0.isNumber }
        guard let number = Int(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).trimmingCharacters(in: .whitespaces).lowercased()
        let multipliers: [String: Int] = ["ms": 1, "s": 1000, "": 1000, "m": 60_000, "min": 60_000, "h": 3_600_000, "d": 86_400_000]
        guard let multiplier = multipliers[unit] else { return nil }
        return number * multiplier
    }
}
