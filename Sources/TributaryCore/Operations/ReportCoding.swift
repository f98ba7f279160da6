import Foundation

/// The JSON operators read (`status --json`, the operations server's pages): indented, sorted
/// snake_case keys converted from the reports' property names, times as manifests store them.
/// Manifests spell their keys out instead (`ManifestCoding`); the reports are few and small.
public enum ReportCoding {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let encoder = ManifestCoding.encoder(outputFormatting: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return Array(try encoder.encode(value))
    }
}
