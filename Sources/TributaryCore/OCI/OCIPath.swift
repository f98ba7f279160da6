/// Object Storage request paths, encoded exactly as Oracle's SDKs encode them (what is signed must
/// be byte for byte what is sent): every byte outside `A-Z a-z 0-9 - . _ ~` becomes `%XX`.
public enum OCIPath {
    public static func encode(_ text: String) -> String {
        var result = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                result.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                result += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return result
    }

    public static func namespace() -> String { "/n" }

    public static func objects(namespace: String, bucket: String) -> String {
        "/n/\(encode(namespace))/b/\(encode(bucket))/o"
    }

    public static func object(namespace: String, bucket: String, name: String) -> String {
        objects(namespace: namespace, bucket: bucket) + "/" + encode(name)
    }

    public static func copyObject(namespace: String, bucket: String) -> String {
        "/n/\(encode(namespace))/b/\(encode(bucket))/actions/copyObject"
    }

    public static func workRequest(_ id: String) -> String { "/workRequests/\(encode(id))" }

    public static func workRequestErrors(_ id: String) -> String { workRequest(id) + "/errors" }

    public static func uploads(namespace: String, bucket: String) -> String {
        "/n/\(encode(namespace))/b/\(encode(bucket))/u"
    }

    public static func upload(namespace: String, bucket: String, name: String) -> String {
        uploads(namespace: namespace, bucket: bucket) + "/" + encode(name)
    }

    /// `path?k=v&…` in the given order, values encoded; nil values are left out.
    public static func withQuery(_ path: String, _ parameters: [(String, String?)]) -> String {
        let query = parameters.compactMap { name, value in value.map { "\(encode(name))=\(encode($0))" } }
        return query.isEmpty ? path : path + "?" + query.joined(separator: "&")
    }
}
