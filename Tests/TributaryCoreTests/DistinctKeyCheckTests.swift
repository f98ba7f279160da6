import Testing
@testable import TributaryCore

/// Whether a CDC file's changes each have a key of their own, which spares its merge a sort.
@Suite struct DistinctKeyCheckTests {
    func relation(_ columns: [(String, UInt32)], key: [String]) -> RelationSchema {
        RelationSchema(table: QualifiedName(schema: "public", name: "t"),
                       columns: columns.map { .init(name: $0.0, sourceType: "", stagingType: "", typeOid: $0.1, notNull: true) }, key: key)
    }
    func text(_ value: String) -> PgOutputMessage.TupleValue { .text(ByteSlice(copying: Array(value.utf8))) }

    @Test func keysThatAllDifferHold() {
        var check = DistinctKeyCheck(relation: relation([("id", 20), ("v", 1700)], key: ["id"]), keyPositions: [0])
        for id in 1...1000 { check.record(.insert, [text(String(id)), text("1.0")]) }
        check.record(.delete, [text("1001"), .null])
        #expect(check.holds == true)
    }

    @Test func aKeyThatComesAgainEndsIt() {
        var check = DistinctKeyCheck(relation: relation([("id", 23), ("v", 25)], key: ["id"]), keyPositions: [0])
        check.record(.insert, [text("7"), text("a")])
        check.record(.update, [text("8"), text("b")])
        check.record(.delete, [text("7"), .null])
        #expect(check.holds == false)
        check.record(.insert, [text("9"), text("c")])
        #expect(check.holds == false, "once repeated, always repeated")
    }

    @Test func theColumnsOfACompositeKeyAreToldApart() {
        var check = DistinctKeyCheck(relation: relation([("a", 25), ("b", 25)], key: ["a", "b"]), keyPositions: [0, 1])
        check.record(.insert, [text("a"), text("bc")])
        check.record(.insert, [text("ab"), text("c")])
        #expect(check.holds == true)
        check.record(.update, [text("a"), text("bc")])
        #expect(check.holds == false)
    }

    @Test func keysWhoseTextIsNotCanonicalAreNotChecked() {
        // numeric: 1.0 and 1.00 are one key with two texts.
        var check = DistinctKeyCheck(relation: relation([("id", 1700)], key: ["id"]), keyPositions: [0])
        check.record(.insert, [text("1.0")])
        #expect(check.holds == nil)
        #expect(DistinctKeyCheck(relation: relation([("id", 20), ("at", 1184)], key: ["id", "at"]), keyPositions: [0, 1]).holds == nil)
        #expect(DistinctKeyCheck(relation: relation([("id", 2950)], key: ["id"]), keyPositions: [0]).holds == true)
    }

    @Test func aKeyWithoutItsValueEndsIt() {
        var null = DistinctKeyCheck(relation: relation([("id", 20)], key: ["id"]), keyPositions: [0])
        null.record(.insert, [.null])
        #expect(null.holds == false)
        var unchanged = DistinctKeyCheck(relation: relation([("id", 25)], key: ["id"]), keyPositions: [0])
        unchanged.record(.update, [.unchanged])
        #expect(unchanged.holds == false)
    }

    @Test func truncatesAreNotKeys() {
        var check = DistinctKeyCheck(relation: relation([("id", 20)], key: ["id"]), keyPositions: [0])
        check.record(.insert, [text("1")])
        check.record(.truncate, [.null])
        check.record(.truncate, [.null])
        check.record(.insert, [text("2")])
        #expect(check.holds == true)
    }
}
