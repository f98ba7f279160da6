import TributaryCore
import TributaryStorage

/// Reading manifests back from the staging store, with their format checked.
extension StagingStore {
    /// The manifest at `key`. Bytes that do not decode are a corrupt object; a format this build does
    /// not know is refused with the way out.
    func manifest<Manifest: VersionedManifest>(_ type: Manifest.Type, at key: String) async throws -> Manifest {
        let manifest: Manifest
        do {
            manifest = try ManifestCoding.decode(type, from: try await get(key: key))
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError.corrupt(key: key, reason: "not a \(Manifest.currentFormat) manifest (\(error))")
        }
        guard manifest.format == Manifest.currentFormat else {
            throw TributaryError(.version, "\(key) has format \(manifest.format); this tributary reads \(Manifest.currentFormat): upgrade tributary")
        }
        return manifest
    }
}
