/// A failure the operator can act on: what is wrong, where, and what to do, in one line.
public struct OperatorError: Error, CustomStringConvertible, Sendable {
    /// The failures a supervisor treats differently from the rest.
    public enum Kind: Sendable {
        case general
        /// Another process consumes the replication slot.
        case slotInUse
        /// Another applier holds the target.
        case applierBusy
    }

    public var message: String
    public var kind: Kind

    public init(_ message: String, kind: Kind = .general) {
        self.message = message
        self.kind = kind
    }

    public var description: String { message }
}
