import Testing
import TributaryCore

@Suite struct QualifiedNameTests {
    @Test func parsesQuotedAndFoldedNames() {
        #expect(QualifiedName(parsing: "Public.Customers") == QualifiedName(schema: "public", name: "customers"))
        #expect(QualifiedName(parsing: "orders") == QualifiedName(schema: "public", name: "orders"))
        #expect(QualifiedName(parsing: "\"Sales Data\".\"Order \"\"Lines\"\"\"")
                == QualifiedName(schema: "Sales Data", name: "Order \"Lines\""))
        #expect(QualifiedName(parsing: "\"a.b\".c") == QualifiedName(schema: "a.b", name: "c"))
    }

    @Test func rejectsMalformedNames() {
        for text in ["", "a.", ".b", "a.b.c", "\"open", "x\"y\"", "\"q\"z.t"] {
            #expect(QualifiedName(parsing: text) == nil, "\(text)")
        }
    }

    @Test func quotesForSQLAndDisplay() {
        let name = QualifiedName(schema: "Sales Data", name: "it\"s")
        #expect(name.sql == "\"Sales Data\".\"it\"\"s\"")
        #expect(name.description == "\"Sales Data\".\"it\"\"s\"")
        #expect(QualifiedName(schema: "public", name: "orders").description == "public.orders")
        #expect(SQL.literal("it's") == "'it''s'")
        #expect(SQL.truncated("äöü", bytes: 5) == "äö")
    }
}
