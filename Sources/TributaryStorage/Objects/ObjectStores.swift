import Synchronization
import Foundation
import Logging
import TributaryCore

/// Opens the object stores the object sync's mappings name, one OCI client per set of
/// credentials and endpoint, shared by the mappings that use it.
public final class ObjectStores: Sendable {
    private let defaults: OCISettings
    private let connections: Int
    private let logger: Logger
    private let clients = Mutex<[ObjectLocation.Access: (OCIObjectStorageClient, region: String)]>([:])

    /// - Parameters:
    ///   - defaults: the `oci:` section, for what a location does not say.
    ///   - connections: requests at once per client.
    public init(defaults: OCISettings, connections: Int, logger: Logger) {
        self.defaults = defaults
        self.connections = connections
        self.logger = logger
    }

    /// - Parameter isSource: a source is only read, and a directory source must exist (a target's
    ///   directory is made by its first write).
    public func open(_ location: ObjectLocation, isSource: Bool) throws -> any ObjectStore {
        switch location.store {
        case .directory(let path):
            return FileObjectStore(root: location.prefix.isEmpty ? path : path + "/" + location.prefix.dropLast(), mustExist: isSource)
        case .oci(let namespace, let bucket):
            let (client, region) = try client(for: location.access.over(defaults))
            return OCIObjectStore(client: client, namespace: namespace, bucket: bucket, prefix: location.prefix, region: region)
        }
    }

    private func client(for access: ObjectLocation.Access) throws -> (OCIObjectStorageClient, region: String) {
        if let known = clients.withLock({ $0[access] }) { return known }
        let credentials = try OCICredentials.load(configFile: access.configFile, profile: access.profile, logger: logger)
        var settings = OCIObjectStorageClient.Settings()
        settings.http.connections = connections
        settings.retry = OCIRetryPolicy(attempts: defaults.attempts)
        let region = access.region ?? credentials.profile.region
        let client = try OCIObjectStorageClient(endpoint: access.endpoint ?? OCIObjectStorageClient.endpoint(region: region),
                                                signer: credentials.signer, settings: settings, logger: logger)
        clients.withLock { $0[access] = (client, region) }
        return (client, region)
    }
}
