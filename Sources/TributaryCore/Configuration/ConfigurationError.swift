/// A configuration problem, located so the operator can fix it: file, line, key path, cause.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    /// Dotted path of the key, e.g. `tables[2].key`.
    public var keyPath: String
    public var problem: String

    public init(file: String, line: Int? = nil, keyPath: String = "", problem: String) {
        self.file = file
        self.line = line
        self.keyPath = keyPath
        self.problem = problem
    }

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        return keyPath.isEmpty ? "\(location): \(problem)" : "\(location): \(keyPath): \(problem)"
    }
}
