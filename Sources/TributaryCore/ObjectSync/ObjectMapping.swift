/// Where object files live: a bucket (and prefix) in OCI Object Storage, reached with a profile of
/// its own (source and target may sit in different tenancies or regions), or a local directory.
public struct ObjectLocation: Sendable, Hashable, CustomStringConvertible {
    public enum Store: Sendable, Hashable {
        case oci(namespace: String, bucket: String)
        case directory(String)
    }

    /// The credentials and endpoint of an OCI location; nil fields fall back to the `oci:` section.
    public struct Access: Sendable, Hashable {
        public var configFile: String?
        public var profile: String?
        public var region: String?
        public var endpoint: String?

        public init(configFile: String? = nil, profile: String? = nil, region: String? = nil, endpoint: String? = nil) {
            self.configFile = configFile
            self.profile = profile
            self.region = region
            self.endpoint = endpoint
        }

        /// These fields over `defaults`.
        public func over(_ defaults: OCISettings) -> Access {
            Access(configFile: configFile ?? defaults.configFile, profile: profile ?? defaults.profile,
                   region: region ?? defaults.region, endpoint: endpoint ?? defaults.endpoint)
        }
    }

    public var store: Store
    /// Names under this prefix (empty, or ending in `/`), listed and written relative to it.
    public var prefix: String
    public var access: Access

    public init(store: Store, prefix: String, access: Access = .init()) {
        self.store = store
        self.prefix = prefix.isEmpty || prefix.hasSuffix("/") ? prefix : prefix + "/"
        self.access = access
    }

    public var description: String {
        switch store {
        case .oci(let namespace, let bucket): return "oci://\(namespace)/\(bucket)/\(prefix)"
        case .directory(let path): return "file://\(path)/\(prefix)"
        }
    }

    /// Parses `oci://namespace/bucket/prefix` or `file:///path/prefix`; a plain path is a
    /// directory, resolved by the caller.
    public static func parse(_ text: String) -> (store: Store, prefix: String)? {
        if text.hasPrefix("oci://") {
            let parts = text.dropFirst("oci://".count).split(separator: "/", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count >= 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
            return (.oci(namespace: String(parts[0]), bucket: String(parts[1])), parts.count == 3 ? String(parts[2]) : "")
        }
        let path = text.hasPrefix("file://") ? String(text.dropFirst("file://".count)) : text
        guard !path.isEmpty, !text.contains("://") || text.hasPrefix("file://") else { return nil }
        return (.directory(path), "")
    }

    /// Whether one set of credentials reaches both: then Object Storage copies server-side.
    public func sharesCredentials(with other: ObjectLocation) -> Bool {
        guard case .oci = store, case .oci = other.store else { return false }
        return access.configFile == other.access.configFile && access.profile == other.access.profile
            && access.endpoint == other.access.endpoint
    }
}

/// One source bucket/prefix and where its objects go (`objects:` in a source's YAML).
public struct ObjectMapping: Sendable, Hashable {
    public struct Deletes: Sendable, Hashable {
        /// Off by default: target objects the source no longer has are only reported.
        public var enabled = false
        /// More to delete than this in one pass, and none are: it looks like a mistake.
        public var maximum = 1_000
        /// Deletes move here (a prefix in the target location) instead of going.
        public var trashPrefix: String?

        public init() {}
    }

    /// `<source>:<from>`: how the control state knows the mapping.
    public var id: String
    public var source: ObjectLocation
    public var target: ObjectLocation
    /// Glob patterns on the names (relative to the prefix): `*` within a path segment, `**` across.
    public var include: [String]
    public var exclude: [String]
    public var deletes = Deletes()

    public init(id: String, source: ObjectLocation, target: ObjectLocation, include: [String] = [], exclude: [String] = []) {
        self.id = id
        self.source = source
        self.target = target
        self.include = include
        self.exclude = exclude
    }

    /// Whether a name (relative to the source prefix) is synced.
    public func selects(_ name: String) -> Bool {
        (include.isEmpty || include.contains { NamePattern.matches($0, name) }) && !exclude.contains { NamePattern.matches($0, name) }
            && !(deletes.trashPrefix.map { name.hasPrefix($0) } ?? false)
    }
}

/// Settings of the object sync (section `sync` of tributary.yaml).
public struct ObjectSyncSettings: Sendable, Hashable {
    /// Where each source's mappings go when they name no target: `<target>/<source>/`.
    public var target: ObjectLocation?
    /// Copies at once.
    public var connections = 8
    /// `tributary run` makes a pass this often.
    public var interval: Duration = .seconds(300)
    /// Objects above this are copied in parts (streamed range by range, never whole in memory).
    public var multipartThreshold = 64 << 20
    public var partSize = 16 << 20
    /// Objects per listing page.
    public var pageSize = 1_000
    /// Below this size an object is copied through this host even when Object Storage could copy
    /// it: a GET and a PUT are two requests and no wait, a CopyObject is one, then its work request
    /// polled until done, for the same few bytes.
    public var serverSideMinimum = 1 << 20

    public init() {}
}

/// Shell-style patterns on object names: `*` and `?` within a path segment, `**` across segments.
public enum NamePattern {
    public static func matches(_ pattern: String, _ name: String) -> Bool {
        match(Array(pattern.unicodeScalars), 0, Array(name.unicodeScalars), 0)
    }

    private static func match(_ pattern: [Unicode.Scalar], _ p: Int, _ name: [Unicode.Scalar], _ n: Int) -> Bool {
        if p == pattern.count { return n == name.count }
        if pattern[p] == "*" {
            let across = p + 1 < pattern.count && pattern[p + 1] == "*"
            let next = p + (across ? 2 : 1)
            // `**/` also matches nothing at all: `**/*.pdf` takes `a.pdf`.
            if across && next < pattern.count && pattern[next] == "/" && match(pattern, next + 1, name, n) { return true }
            var index = n
            while true {
                if match(pattern, next, name, index) { return true }
                guard index < name.count, across || name[index] != "/" else { return false }
                index += 1
            }
        }
        guard n < name.count else { return false }
        if pattern[p] == "?" { return name[n] != "/" && match(pattern, p + 1, name, n + 1) }
        return pattern[p] == name[n] && match(pattern, p + 1, name, n + 1)
    }
}
