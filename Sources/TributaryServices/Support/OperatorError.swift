/// A failure the operator can act on: what is wrong, where, and what to do, in one line.
public struct OperatorError: Error, CustomStringConvertible, Sendable {
    public var message: String

    public init(_ message: String) { self.message = message }

    public var description: String { message }
}
