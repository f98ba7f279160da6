import Foundation
import TributaryCore

/// Reads the configuration directory (the edge: files and environment) and hands the texts to
/// the pure `ConfigurationParser`.
public enum ConfigurationLoader {
    public static func load(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        let absolute = ConfigurationParser.resolve(directory, against: FileManager.default.currentDirectoryPath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConfigurationError(file: directory, problem: "configuration directory not found: pass --config DIR or set TRIBUTARY_CONFIG")
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: absolute)) ?? []
        let files = try names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { name in
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: (absolute as NSString).appendingPathComponent(name)) else {
                throw ConfigurationError(file: path, problem: "cannot read the file (check its permissions)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw ConfigurationError(file: path, problem: "not UTF-8 text")
            }
            return ConfigurationParser.File(name: path, text: text)
        }
        return try ConfigurationParser.parse(files: files, directory: absolute, environment: environment)
    }
}
