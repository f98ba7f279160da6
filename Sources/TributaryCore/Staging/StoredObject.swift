/// What a listing of the staging store says of one object. In the core, so pure decisions over a
/// listing (retention) take it as the stores return it.
public struct StoredObject: Sendable, Hashable {
    public var key: String
    public var size: Int

    public init(key: String, size: Int) {
        self.key = key
        self.size = size
    }
}
