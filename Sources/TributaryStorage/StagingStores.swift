import Logging
import TributaryCore

/// Opens the staging store the configuration names.
public enum StagingStores {
    public static func open(_ target: TargetConfiguration, logger: Logger) throws -> any StagingStore {
        let store = try openUnsigned(target, logger: logger)
        guard let key = target.signingKey else { return store }
        return SigningStagingStore(store, key: Array(key.utf8))
    }

    static func openUnsigned(_ target: TargetConfiguration, logger: Logger) throws -> any StagingStore {
        switch target.staging {
        case .directory(let path):
            return try FilesystemStagingStore(root: path)
        case .objectStorage(let namespace, let bucket, let prefix):
            let oci = target.oci
            let credentials = try OCICredentials.load(configFile: oci.configFile, profile: oci.profile, logger: logger)
            var settings = OCIObjectStorageClient.Settings()
            settings.multipartThreshold = Int64(oci.multipartThreshold)
            settings.partSize = Int64(oci.partSize)
            settings.http.connections = oci.connections
            settings.retry = OCIRetryPolicy(attempts: oci.attempts)
            let endpoint = oci.endpoint ?? OCIObjectStorageClient.endpoint(region: oci.region ?? credentials.profile.region)
            let client = try OCIObjectStorageClient(endpoint: endpoint, signer: credentials.signer, settings: settings, logger: logger)
            return try OCIStagingStore(namespace: namespace, bucket: bucket, prefix: prefix, client: client,
                                       workDirectory: target.workDirectory, logger: logger)
        }
    }
}
