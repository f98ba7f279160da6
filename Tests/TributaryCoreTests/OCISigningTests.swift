import Foundation
import Testing
import TributaryCore

/// The signer against Oracle's own SDK: every vector reproduced byte for byte.
@Suite struct OCISigningTests {
    struct Vectors: Decodable {
        struct Case: Decodable {
            var operation: String
            var params: [String: Param]
            var method: String
            var path: String
            var headers: [String: String]
            var body_base64: String
            var signed_headers: [String]
            var signing_string: String
            var signature: String
        }

        /// Parameters are strings or numbers; anything else (the multipart commit's part list) is
        /// not needed to build the path.
        enum Param: Decodable {
            case text(String), number(Int), other
            init(from decoder: any Decoder) throws {
                let container = try decoder.singleValueContainer()
                if let number = try? container.decode(Int.self) {
                    self = .number(number)
                } else if let text = try? container.decode(String.self) {
                    self = .text(text)
                } else {
                    self = .other
                }
            }
            var text: String? {
                switch self {
                case .text(let value): return value
                case .number(let value): return String(value)
                case .other: return nil
                }
            }
        }

        var tenancy: String
        var user: String
        var fingerprint: String
        var cases: [Case]
    }

    static func fixture(_ name: String) throws -> Data {
        try Data(contentsOf: try #require(Bundle.module.url(forResource: "Fixtures/oci/\(name)", withExtension: nil)))
    }

    func path(for vector: Vectors.Case) -> String {
        let p = { (key: String) in vector.params[key]?.text ?? nil }
        let namespace = p("namespace") ?? "", bucket = p("bucket") ?? "", object = p("object") ?? ""
        switch vector.operation {
        case "GetNamespace": return OCIPath.namespace()
        case "ListObjects":
            return OCIPath.withQuery(OCIPath.objects(namespace: namespace, bucket: bucket),
                                     [("prefix", p("prefix")), ("start", p("start")), ("limit", p("limit")), ("fields", p("fields"))])
        case "CreateMultipartUpload": return OCIPath.uploads(namespace: namespace, bucket: bucket)
        case "UploadPart":
            return OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: object),
                                     [("uploadId", p("upload_id")), ("uploadPartNum", p("part_num"))])
        case "CommitMultipartUpload", "AbortMultipartUpload":
            return OCIPath.withQuery(OCIPath.upload(namespace: namespace, bucket: bucket, name: object), [("uploadId", p("upload_id"))])
        default: return OCIPath.object(namespace: namespace, bucket: bucket, name: object)
        }
    }

    @Test func reproducesEveryVectorByteForByte() throws {
        let vectors = try JSONDecoder().decode(Vectors.self, from: try Self.fixture("vectors.json"))
        #expect(vectors.cases.count == 14)
        let key = try OCIPrivateKey(pem: Array(try Self.fixture("key.pem")), passphrase: nil)
        let signer = OCIRequestSigner(tenancy: vectors.tenancy, user: vectors.user, fingerprint: vectors.fingerprint, key: key)
        for vector in vectors.cases {
            #expect(path(for: vector) == vector.path, "\(vector.operation): path")
            let signsBody = !(["GET", "HEAD", "DELETE"].contains(vector.method) || ["PutObject", "UploadPart"].contains(vector.operation))
            if signsBody {
                let body = Array(Data(base64Encoded: vector.body_base64)!)
                #expect(OCIRequestSigner.contentSHA256(body) == vector.headers["x-content-sha256"], "\(vector.operation): body hash")
            }
            let signed = try signer.sign(method: vector.method, pathAndQuery: path(for: vector), headers: vector.headers, signsBody: signsBody)
            #expect(signed.signedHeaders == vector.signed_headers, "\(vector.operation): header list")
            #expect(signed.signingString == vector.signing_string, "\(vector.operation): signing string")
            #expect(signed.signature == vector.signature, "\(vector.operation): signature")
            #expect(signed.authorization == vector.headers["authorization"], "\(vector.operation): authorization header")
        }
        #expect(OCIRequestSigner.httpDate(Date(timeIntervalSince1970: 1_795_511_700)) == "Tue, 24 Nov 2026 09:15:00 GMT")
    }

    @Test func keysInEveryPEMFormAndPassphrases() throws {
        let message = Array("date: x".utf8)
        let reference = try OCIPrivateKey(pem: Array(try Self.fixture("key.pem")), passphrase: nil).signSHA256(message)
        #expect(try OCIPrivateKey(pem: Array(try Self.fixture("key-pkcs1.pem")), passphrase: nil).signSHA256(message) == reference)
        #expect(try OCIPrivateKey(pem: Array(try Self.fixture("key-encrypted.pem")), passphrase: "correct-horse").signSHA256(message) == reference)
        #expect(throws: OCIPrivateKey.Failure.wrongPassphrase) { try OCIPrivateKey(pem: Array(try Self.fixture("key-encrypted.pem")), passphrase: "wrong") }
        #expect(throws: OCIPrivateKey.Failure.wrongPassphrase) { try OCIPrivateKey(pem: Array(try Self.fixture("key-encrypted.pem")), passphrase: nil) }
        #expect(throws: OCIPrivateKey.Failure.self) { try OCIPrivateKey(pem: Array("not a key".utf8), passphrase: nil) }
    }

    @Test func configProfilesInheritDefaultAndNameTheirMistakes() throws {
        let text = String(decoding: try Self.fixture("config"), as: UTF8.self) + """

            [STAGING]
            region=us-ashburn-1
            pass_phrase=secret

            [BROKEN]
            fingerprint=73:7a:8f
            """
        let config = try OCIConfigFile(file: "~/.oci/config", text: text)
        let staging = try config.profile("STAGING")
        #expect(staging.region == "us-ashburn-1" && staging.passphrase == "secret")
        #expect(staging.user == "ocid1.user.oc1..aaaaaaaapublicuser0000000000000000000000000000000" && staging.keyFile == "key.pem")
        #expect(try config.profile("DEFAULT").region == "eu-frankfurt-1")
        #expect(throws: OCIConfigFile.Failure.self) { try config.profile("MISSING") }
        do {
            _ = try config.profile("BROKEN")
            Issue.record("a malformed fingerprint was accepted")
        } catch let failure as OCIConfigFile.Failure {
            #expect(failure.description.contains("fingerprint \"73:7a:8f\" is malformed"))
        }
        #expect(throws: OCIConfigFile.Failure.self) { try OCIConfigFile(file: "c", text: "user=x") }
    }
}
