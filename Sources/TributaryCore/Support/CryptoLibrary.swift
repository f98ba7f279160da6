import COpenSSL

/// OpenSSL as this process uses it: through libcurl, libpq and our own digests and signatures.
public enum CryptoLibrary {
    /// Keeps OpenSSL's state until the process is gone, instead of freeing it in an `atexit`
    /// handler. That handler assumes no other thread still uses OpenSSL, but a Swift process exits
    /// from whichever thread ends `main`, while connection threads may still be ending (OpenSSL
    /// frees their thread state as they go) and pool threads may still hash: the two frees raced,
    /// and `run` stopped by SIGTERM once aborted with "double free or corruption" right after it
    /// logged "stopped" (openssl/openssl#6214; curl and libdatachannel do the same). Must come
    /// before anything else initialises OpenSSL: its first initialisation decides.
    public static func keepStateUntilExit() {
        _ = OPENSSL_init_crypto(UInt64(OPENSSL_INIT_NO_ATEXIT), nil)
    }
}
