import Foundation

/// `~/.oci/config` as the OCI CLI and SDKs read it: INI sections (profiles), keys in `DEFAULT`
/// inherited by every profile. Parsing only; reading the file and the key happens at the edge.
public struct OCIConfigFile: Sendable {
    public struct Profile: Sendable, Equatable {
        public var name: String
        public var user: String
        public var fingerprint: String
        public var keyFile: String
        public var tenancy: String
        public var region: String
        public var passphrase: String?
    }

    public struct Failure: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    public let file: String
    private var sections: [String: [String: String]] = [:]

    public init(file: String, text: String) throws {
        self.file = file
        var current: String?
        for (number, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.count > 2 else {
                    throw Failure(description: "\(file):\(number + 1): malformed section header \(line)")
                }
                let name = String(line.dropFirst().dropLast())
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
                continue
            }
            guard let current, let equals = line.firstIndex(of: "=") else {
                throw Failure(description: "\(file):\(number + 1): expected key=value inside a [PROFILE] section")
            }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            sections[current]![key] = value
        }
    }

    public var profileNames: [String] { sections.keys.sorted() }

    /// The profile with DEFAULT's keys filled in; every required key checked.
    public func profile(_ name: String) throws -> Profile {
        guard sections[name] != nil || name == "DEFAULT" && sections["DEFAULT"] != nil else {
            throw Failure(description: "\(file) has no profile [\(name)] (profiles: \(profileNames.joined(separator: ", "))): set OCI_CLI_PROFILE or the staging URL's profile")
        }
        let values = (sections["DEFAULT"] ?? [:]).merging(sections[name] ?? [:]) { $1 }
        func required(_ key: String) throws -> String {
            guard let value = values[key], !value.isEmpty else {
                throw Failure(description: "\(file) [\(name)]: \(key) is missing")
            }
            return value
        }
        let fingerprint = try required("fingerprint")
        let parts = fingerprint.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 16, parts.allSatisfy({ $0.count == 2 && $0.allSatisfy(\.isHexDigit) }) else {
            throw Failure(description: "\(file) [\(name)]: fingerprint \"\(fingerprint)\" is malformed: expected 16 colon-separated hex pairs (aa:bb:…), as the console shows it")
        }
        return Profile(name: name, user: try required("user"), fingerprint: fingerprint.lowercased(), keyFile: try required("key_file"),
                       tenancy: try required("tenancy"), region: try required("region"), passphrase: values["pass_phrase"])
    }
}
