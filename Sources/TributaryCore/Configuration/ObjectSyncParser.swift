import Foundation

/// Reads the object sync's configuration: `sync:` in tributary.yaml, `objects:` in a source's YAML.
enum ObjectSyncParser {
    static let accessKeys = ["config_file", "profile", "region", "endpoint"]

    static func settings(_ section: YAMLReader, directory: String) throws -> ObjectSyncSettings {
        try section.requireOnly(["target", "connections", "interval", "multipart_threshold", "part_size", "page_size", "server_side_min"]
                                + accessKeys)
        var settings = ObjectSyncSettings()
        if let text = try section.string("target") {
            settings.target = try location(text, access: try access(section, prefix: ""), reader: section, key: "target", directory: directory)
        }
        settings.connections = try section.integer("connections", in: 1...64) ?? settings.connections
        settings.interval = try section.duration("interval") ?? settings.interval
        settings.multipartThreshold = try section.bytes("multipart_threshold") ?? settings.multipartThreshold
        settings.partSize = try section.bytes("part_size") ?? settings.partSize
        settings.pageSize = try section.integer("page_size", in: 1...1000) ?? settings.pageSize
        settings.serverSideMinimum = try section.bytes("server_side_min", allowZero: true) ?? settings.serverSideMinimum
        if settings.partSize < 1 << 20 || settings.partSize > 1 << 30 {
            throw section.error("part_size", section.node("part_size")!, "must be from 1MiB to 1GiB")
        }
        return settings
    }

    /// The source's mappings; a mapping without `to` goes under the sync target, at
    /// `<target prefix><source>/<bucket>/`, so two sources never write the same name.
    static func mappings(_ root: YAMLReader, source: String, directory: String, settings: ObjectSyncSettings?) throws -> [ObjectMapping] {
        var mappings: [ObjectMapping] = []
        for reader in try root.children("objects") ?? [] {
            try reader.requireOnly(["from", "to", "include", "exclude", "delete", "max_delete", "trash"] + accessKeys + accessKeys.map { "to_" + $0 })
            let fromText = try reader.requiredString("from")
            let from = try location(fromText, access: try access(reader, prefix: ""), reader: reader, key: "from", directory: directory)
            let to: ObjectLocation
            if let text = try reader.string("to") {
                to = try location(text, access: try access(reader, prefix: "to_"), reader: reader, key: "to", directory: directory)
            } else if let target = settings?.target {
                to = ObjectLocation(store: target.store, prefix: target.prefix + "\(source)/\(bucketName(from))/" + from.prefix, access: target.access)
            } else {
                throw TributaryError.configuration(file: reader.file, line: reader.line, keyPath: reader.path + ".to",
                                         problem: "no to: and no sync.target in tributary.yaml: say where the objects go")
            }
            var mapping = ObjectMapping(id: "\(source):\(from)", source: from, target: to, include: try reader.stringList("include") ?? [],
                                        exclude: try reader.stringList("exclude") ?? [])
            mapping.deletes.enabled = try reader.bool("delete") ?? false
            mapping.deletes.maximum = try reader.integer("max_delete", in: 0...100_000_000) ?? mapping.deletes.maximum
            mapping.deletes.trashPrefix = try reader.string("trash").map { $0.hasSuffix("/") ? $0 : $0 + "/" }
            if mappings.contains(where: { $0.target == mapping.target }) {
                throw TributaryError.configuration(file: reader.file, line: reader.line, keyPath: reader.path, problem: "another mapping writes to \(to) too")
            }
            mappings.append(mapping)
        }
        return mappings
    }

    static func bucketName(_ location: ObjectLocation) -> String {
        switch location.store {
        case .oci(_, let bucket): return bucket
        case .directory(let path): return (path as NSString).lastPathComponent
        }
    }

    static func access(_ reader: YAMLReader, prefix: String) throws -> ObjectLocation.Access {
        ObjectLocation.Access(configFile: try reader.string(prefix + "config_file"), profile: try reader.string(prefix + "profile"),
                              region: try reader.string(prefix + "region"), endpoint: try reader.string(prefix + "endpoint"))
    }

    static func location(_ text: String, access: ObjectLocation.Access, reader: YAMLReader, key: String, directory: String) throws -> ObjectLocation {
        guard let (store, prefix) = ObjectLocation.parse(text) else {
            throw reader.error(key, reader.node(key)!, "expected oci://<namespace>/<bucket>/<prefix>, file:///path or a path, found \"\(text)\"")
        }
        if case .directory(let path) = store {
            return ObjectLocation(store: .directory(ConfigurationParser.resolve(path, against: directory)), prefix: prefix, access: access)
        }
        return ObjectLocation(store: store, prefix: prefix, access: access)
    }
}
