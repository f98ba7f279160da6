import Foundation
import TributaryCore

/// Reads the configuration directory (the edge: files and environment) and hands the texts to
/// the pure `ConfigurationParser`.
public enum ConfigurationLoader {
    public static func load(directory: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        let absolute = ConfigurationParser.resolve(directory, against: FileManager.default.currentDirectoryPath)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TributaryError.configuration(file: directory, problem: "configuration directory not found: pass --config DIR or set TRIBUTARY_CONFIG")
        }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: absolute)) ?? []
        let files = try names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { name in
            let path = (directory as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: (absolute as NSString).appendingPathComponent(name)) else {
                throw TributaryError.configuration(file: path, problem: "cannot read the file (check its permissions)")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw TributaryError.configuration(file: path, problem: "not UTF-8 text")
            }
            return ConfigurationParser.File(name: path, text: text)
        }
        return try ConfigurationParser.parse(files: files, directory: absolute, environment: environment,
                                             models: try readModels(directory: directory, absolute: absolute))
    }

    /// Reads `source`'s configuration again from `directory`, as it is then (nil when it does not
    /// load): how a running replicator learns of a table added to it.
    public static func refresher(directory: String?, source: String) -> @Sendable () -> SourceConfiguration? {
        {
            guard let directory else { return nil }
            return (try? load(directory: directory))?.sources.first { $0.name == source }
        }
    }

    /// `bl/*.yaml`, each with its `.sql`.
    static func readModels(directory: String, absolute: String) throws -> [(yaml: ConfigurationParser.File, sql: String?)] {
        let folder = (absolute as NSString).appendingPathComponent("bl")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return try names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { name in
            let path = ((directory as NSString).appendingPathComponent("bl") as NSString).appendingPathComponent(name)
            guard let data = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent(name)),
                  let text = String(data: data, encoding: .utf8) else {
                throw TributaryError.configuration(file: path, problem: "cannot read the file as UTF-8 text (check its permissions)")
            }
            let sqlName = (name as NSString).deletingPathExtension + ".sql"
            let sql = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent(sqlName)).flatMap { String(data: $0, encoding: .utf8) }
            return (ConfigurationParser.File(name: path, text: text), sql)
        }
    }
}
