// swift-tools-version:6.2
import PackageDescription

// Module graph (one direction only):
//   tributary (CLI) → TributaryServices → TributaryPostgres, TributaryStorage → TributaryCore → C system libraries
// TributaryCore is pure logic: no sockets, files or clocks.
let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "Tributary",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tributary", targets: ["tributary"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.4.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.0.0"),
        // The operations endpoints (/metrics, /healthz, /readyz); its optional traits (swift-configuration) are off.
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0", traits: []),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.80.0"),
    ],
    targets: [
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CISAL", pkgConfig: "libisal", providers: [.apt(["libisal-dev"])]),
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

        // Pure computation in C, for SIMD the Swift compiler does not give: the CSV-to-text loop.
        .target(name: "CCSVTranscoder"),

        .target(
            name: "TributaryCore",
            dependencies: ["CISAL", "CCSVTranscoder", "COpenSSL", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .target(
            name: "TributaryPostgres",
            dependencies: ["CLibPQ", "TributaryCore", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "TributaryStorage",
            dependencies: ["TributaryCore", "CCurl", .product(name: "Logging", package: "swift-log"), .product(name: "Metrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        .target(
            name: "TributaryServices",
            dependencies: [
                "TributaryCore", "TributaryPostgres", "TributaryStorage",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "tributary",
            dependencies: [
                "TributaryServices",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // What both test targets share: the seeded generator, and (for the integration tests) the
        // clusters, the fixtures and the helpers that start, wait for and stop tributary.
        .target(
            name: "TributaryTestSupport",
            dependencies: ["TributaryCore"],
            path: "Tests/TributaryTestSupport",
            swiftSettings: strict
        ),
        .testTarget(name: "TributaryCoreTests", dependencies: ["TributaryCore", "TributaryTestSupport"], resources: [.copy("Fixtures")],
                    swiftSettings: strict),
        .testTarget(
            name: "TributaryIntegrationTests",
            dependencies: ["TributaryServices", "TributaryTestSupport", "tributary"],
            resources: [],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
