import Testing
import TributaryCore

@Suite struct LSNTests {
    @Test func parsesAndPrintsPostgresForm() throws {
        let lsn = try #require(LSN("16/B374D848"))
        #expect(lsn.value == 0x16_B374_D848)
        #expect(lsn.description == "16/B374D848")
        #expect(LSN("0/0") == .zero)
    }

    @Test func paddedHexSortsLikeLSNs() throws {
        let small = LSN(0x1_0000_0000), large = LSN(0xF_0000_0000)
        #expect(small.paddedHex == "0000000100000000")
        #expect(small.paddedHex < large.paddedHex)
        #expect(LSN(small.paddedHex) == small)
    }

    /// What a copy at a consistent point is tagged with: below the point, above every LSN before it.
    @Test func justBeforeIsOneByteBelow() throws {
        #expect(try #require(LSN("1/0")).justBefore.description == "0/FFFFFFFF")
        #expect(try #require(LSN("16/B374D848")).justBefore == LSN(0x16_B374_D847))
        #expect(LSN.zero.justBefore == .zero, "no underflow at 0/0")
    }

    @Test func rejectsGarbage() {
        #expect(LSN("") == nil)
        #expect(LSN("1/") == nil)
        #expect(LSN("x/1") == nil)
        #expect(LSN("123") == nil)
    }
}
