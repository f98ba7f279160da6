import Yams

/// Reads one YAML mapping strictly: every key must be known, every value of the right kind, and every
/// string has its `${ENV}` references expanded. Errors carry file, line and key path.
struct YAMLReader {
    let file: String
    let path: String
    let mapping: Node.Mapping
    let environment: [String: String]
    let line: Int?

    init(file: String, path: String, node: Node, environment: [String: String]) throws {
        guard let mapping = node.mapping else {
            throw TributaryError.configuration(file: file, line: node.mark?.line, keyPath: path, problem: "expected a mapping of keys to values")
        }
        self.file = file
        self.path = path
        self.mapping = mapping
        self.environment = environment
        self.line = node.mark?.line
    }

    /// Rejects keys that are not in `known`, naming the closest known key.
    func requireOnly(_ known: [String]) throws {
        for (key, _) in mapping {
            let name = key.string ?? "?"
            guard !known.contains(name) else { continue }
            let suggestion = known.min { editDistance($0, name) < editDistance($1, name) }
                .flatMap { editDistance($0, name) <= 2 ? " (did you mean \"\($0)\"?)" : nil } ?? ""
            throw TributaryError.configuration(
                file: file, line: key.mark?.line, keyPath: qualified(name),
                problem: "unknown key\(suggestion); known keys: \(known.joined(separator: ", "))")
        }
    }

    func node(_ key: String) -> Node? { mapping[key] }

    func string(_ key: String) throws -> String? {
        guard let node = mapping[key] else { return nil }
        guard let scalar = node.scalar else {
            throw error(key, node, "expected a string")
        }
        do {
            return try EnvironmentExpansion.expand(scalar.string, environment: environment)
        } catch .unset(let name) {
            throw error(key, node, "environment variable \(name) is not set (export it, or write ${\(name):-default})")
        } catch .malformed(let text) {
            throw error(key, node, "malformed environment reference \(text): write ${NAME} or ${NAME:-default}")
        }
    }

    func requiredString(_ key: String) throws -> String {
        guard let value = try string(key) else {
            throw TributaryError.configuration(file: file, line: line, keyPath: qualified(key), problem: "required key is missing")
        }
        guard !value.isEmpty else {
            throw error(key, mapping[key]!, "must not be empty")
        }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        guard let text = try string(key) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: throw error(key, mapping[key]!, "expected true or false, found \"\(text)\"")
        }
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw error(key, mapping[key]!, "expected a whole number from \(range.lowerBound) to \(range.upperBound), found \"\(text)\"")
        }
        return value
    }

    /// A size; 0 only where it means "off" (`allowZero`).
    func bytes(_ key: String, allowZero: Bool = false) throws -> Int? {
        guard let text = try string(key) else { return nil }
        guard let value = Quantity.bytes(text), value > 0 || (allowZero && value == 0) else {
            throw error(key, mapping[key]!, "expected a size such as 64MiB or 1048576, found \"\(text)\"")
        }
        return value
    }

    func duration(_ key: String, allowZero: Bool = false) throws -> Duration? {
        guard let text = try string(key) else { return nil }
        guard let value = Quantity.duration(text), value > .zero || (allowZero && value == .zero) else {
            throw error(key, mapping[key]!, "expected a duration such as 500ms, 1s or 2m, found \"\(text)\"")
        }
        return value
    }

    func stringList(_ key: String) throws -> [String]? {
        guard let node = mapping[key] else { return nil }
        if node.scalar != nil { return [try string(key)!] }
        guard let sequence = node.sequence else { throw error(key, node, "expected a list of strings") }
        return try sequence.enumerated().map { index, element in
            guard let scalar = element.scalar else {
                throw TributaryError.configuration(file: file, line: element.mark?.line, keyPath: "\(qualified(key))[\(index)]", problem: "expected a string")
            }
            return scalar.string
        }
    }

    func child(_ key: String) throws -> YAMLReader? {
        guard let node = mapping[key] else { return nil }
        return try YAMLReader(file: file, path: qualified(key), node: node, environment: environment)
    }

    func children(_ key: String) throws -> [YAMLReader]? {
        guard let node = mapping[key] else { return nil }
        guard let sequence = node.sequence else { throw error(key, node, "expected a list") }
        return try sequence.enumerated().map { index, element in
            try YAMLReader(file: file, path: "\(qualified(key))[\(index)]", node: element, environment: environment)
        }
    }

    func error(_ key: String, _ node: Node, _ problem: String) -> TributaryError {
        TributaryError.configuration(file: file, line: node.mark?.line, keyPath: qualified(key), problem: problem)
    }

    func qualified(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var previous = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in stride(from: 1, through: b.count, by: 1) {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
