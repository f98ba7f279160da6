/// Expands `${NAME}` and `${NAME:-default}` in configuration strings, so secrets stay out of files.
/// `$$` stands for a literal `$`.
public enum EnvironmentExpansion {
    public enum Failure: Error, Equatable {
        case unset(String)
        case malformed(String)
    }

    public static func expand(_ text: String, environment: [String: String]) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[rest.startIndex..<dollar]
            let afterDollar = rest.index(after: dollar)
            if afterDollar < rest.endIndex, rest[afterDollar] == "$" {
                result += "$"
                rest = rest[rest.index(after: afterDollar)...]
                continue
            }
            guard afterDollar < rest.endIndex, rest[afterDollar] == "{",
                  let close = rest[afterDollar...].firstIndex(of: "}") else {
                throw .malformed(String(rest[dollar...].prefix(40)))
            }
            let body = rest[rest.index(after: afterDollar)..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = body.range(of: ":-") {
                name = body[body.startIndex..<separator.lowerBound]
                fallback = body[separator.upperBound...]
            } else {
                name = body
                fallback = nil
            }
            guard !name.isEmpty, name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }) else {
                throw .malformed("${\(body)}")
            }
            if let value = environment[String(name)], !(value.isEmpty && fallback != nil) {
                result += value
            } else if let fallback {
                result += fallback
            } else {
                throw .unset(String(name))
            }
            rest = rest[rest.index(after: close)...]
        }
        return result + rest
    }
}
