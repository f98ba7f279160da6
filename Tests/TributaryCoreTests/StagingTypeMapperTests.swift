import Testing
@testable import TributaryCore

@Suite struct StagingTypeMapperTests {
    let catalog: [UInt32: CatalogType] = [
        23: .init(oid: 23, schema: "pg_catalog", kind: .base),
        1007: .init(oid: 1007, schema: "pg_catalog", kind: .base, elementOID: 23, isArray: true),
        1700: .init(oid: 1700, schema: "pg_catalog", kind: .base),
        3904: .init(oid: 3904, schema: "pg_catalog", kind: .range),
        500: .init(oid: 500, schema: "public", kind: .enumeration),
        501: .init(oid: 501, schema: "public", kind: .base, elementOID: 500, isArray: true),
        600: .init(oid: 600, schema: "public", kind: .domain, baseTypeOID: 1700, baseFormatted: "numeric(10,3)"),
        601: .init(oid: 601, schema: "public", kind: .domain, baseTypeOID: 600, baseFormatted: "money_eur"),
        602: .init(oid: 602, schema: "public", kind: .domain, baseTypeOID: 500, baseFormatted: "mood"),
        700: .init(oid: 700, schema: "public", kind: .composite),
        800: .init(oid: 800, schema: "ext", kind: .base),
    ]

    func map(_ oid: UInt32, _ formatted: String) throws -> String {
        try StagingTypeMapper.stagingType(oid: oid, formattedWithModifier: formatted, catalog: catalog)
    }

    @Test func keepsBuiltInTypesWithTheirModifiers() throws {
        #expect(try map(23, "integer") == "integer")
        #expect(try map(1007, "integer[]") == "integer[]")
        #expect(try map(1700, "numeric(12,2)") == "numeric(12,2)")
        #expect(try map(3904, "int4range") == "int4range")
    }

    @Test func replacesWhatTheTargetLacks() throws {
        #expect(try map(500, "mood") == "text")
        #expect(try map(501, "mood[]") == "text[]")
        #expect(try map(600, "positive_amount") == "numeric(10,3)")
        #expect(try map(601, "nested_domain") == "numeric(10,3)")
        #expect(try map(602, "mood_domain") == "text")
        #expect(try map(700, "address") == "text")
        #expect(try map(800, "citext") == "text")
        #expect(throws: StagingTypeMapper.UnknownType(oid: 999)) { try map(999, "?") }
    }
}
