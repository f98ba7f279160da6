import Foundation
import Logging
import TributaryCore

/// Loads a profile of `~/.oci/config` and its API key, the way the OCI CLI finds them.
public enum OCICredentials {
    public struct Loaded: Sendable {
        public var profile: OCIConfigFile.Profile
        public var signer: OCIRequestSigner
        public var configFile: String
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
    }

    /// - Parameters:
    ///   - configFile: explicit path; else `OCI_CLI_CONFIG_FILE`, `OCI_CONFIG_FILE`, `~/.oci/config`.
    ///   - profile: explicit name; else `OCI_CLI_PROFILE`, else `DEFAULT`.
    public static func load(configFile: String?, profile: String?, environment: [String: String] = ProcessInfo.processInfo.environment,
                            logger: Logger) throws -> Loaded {
        let home = environment["HOME"] ?? NSHomeDirectory()
        let file = expand(configFile ?? environment["OCI_CLI_CONFIG_FILE"] ?? environment["OCI_CONFIG_FILE"] ?? "~/.oci/config", home: home)
        guard let data = FileManager.default.contents(atPath: file) else {
            throw Failure(description: "OCI config file \(file) cannot be read: create it with `oci setup config`, or point OCI_CLI_CONFIG_FILE at it")
        }
        let config: OCIConfigFile
        let chosen: OCIConfigFile.Profile
        do {
            config = try OCIConfigFile(file: file, text: String(decoding: data, as: UTF8.self))
            chosen = try config.profile(profile ?? environment["OCI_CLI_PROFILE"] ?? "DEFAULT")
        } catch let failure as OCIConfigFile.Failure {
            throw Failure(description: failure.description)
        }
        var keyFile = expand(chosen.keyFile, home: home)
        if !keyFile.hasPrefix("/") { keyFile = (file as NSString).deletingLastPathComponent + "/" + keyFile }
        var status = stat()
        guard stat(keyFile, &status) == 0, let pem = FileManager.default.contents(atPath: keyFile) else {
            throw Failure(description: "key_file \(keyFile) of profile [\(chosen.name)] in \(file) cannot be read: \(String(cString: strerror(errno)))")
        }
        if status.st_mode & 0o077 != 0 {
            logger.warning("the OCI API key file is readable by other users: run chmod 600 on it", metadata: [LogKey.file: "\(keyFile)"])
        }
        do {
            let key = try OCIPrivateKey(pem: Array(pem), passphrase: chosen.passphrase)
            let signer = OCIRequestSigner(tenancy: chosen.tenancy, user: chosen.user, fingerprint: chosen.fingerprint, key: key)
            return Loaded(profile: chosen, signer: signer, configFile: file)
        } catch let failure as OCIPrivateKey.Failure {
            throw Failure(description: "key_file \(keyFile) of profile [\(chosen.name)]: \(failure)")
        }
    }

    private static func expand(_ path: String, home: String) -> String {
        path.hasPrefix("~/") ? home + path.dropFirst() : path
    }
}
