/// SplitMix64: small, fast, and the same numbers for the same seed on every run and machine, so a
/// randomized test that prints its seed can be replayed exactly.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    public private(set) var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed from the environment (`TRIBUTARY_SEED`, to replay a failure) or a fresh one.
    public static func seed(environment: [String: String]) -> UInt64 {
        environment["TRIBUTARY_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
    }
}
