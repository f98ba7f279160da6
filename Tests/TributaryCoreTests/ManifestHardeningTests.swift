import Testing
import TributaryCore

/// What a manifest read from the staging store may carry into SQL, and its signature.
@Suite struct ManifestHardeningTests {
    @Test func typeNamesAreWordsAModifierAndBracketsOnly() {
        for good in ["integer", "numeric(12,2)", "timestamp(3) with time zone", "character varying(64)[]", "\"char\"", "text[][]",
                     "double precision", "bit varying(5)", "pg_catalog.int4"] {
            #expect(StagingTypeName.isWellFormed(good), "\(good)")
        }
        for bad in ["text); DROP TABLE stg.x; --", "text DEFAULT (pg_sleep(10))", "int4 CHECK (false)", "\"my type\"", "text;", "",
                    "numeric(1,2,3)", "numeric(a)", "text  ", "Text", "int4 -- comment", "text collate \"C\""] {
            #expect(!StagingTypeName.isWellFormed(bad), "\(bad)")
        }
    }

    @Test func signedManifestsVerifyAndAnythingElseIsRefused() throws {
        let key = Array("0123456789abcdef0123456789abcdef".utf8), body = Array(#"{"format":"tributary-batch/1"}"#.utf8)
        let signed = ManifestSignature.sign(body, key: key)
        #expect(try ManifestSignature.verified(signed, key: key) == body)
        #expect(try ManifestSignature.verified(signed, key: nil) == body, "without a key the line is only taken off")
        #expect(throws: ManifestSignature.Refused.self) { try ManifestSignature.verified(body, key: key) }
        var altered = signed
        altered[3] = UInt8(ascii: "X")
        #expect(throws: ManifestSignature.Refused.self) { try ManifestSignature.verified(altered, key: key) }
        #expect(throws: ManifestSignature.Refused.self) {
            try ManifestSignature.verified(ManifestSignature.sign(body, key: Array("another key, also thirty-two bytes".utf8)), key: key)
        }
    }
}
