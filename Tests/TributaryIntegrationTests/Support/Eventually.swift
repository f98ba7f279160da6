/// Waits until `condition` holds, polling; fails the test with `what` after `seconds`.
func eventually(_ what: String, seconds: Double, poll milliseconds: Int = 200, _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while try await !condition() {
        guard ContinuousClock.now < deadline else { throw TestFailure("not within \(seconds) s: \(what)") }
        try await Task.sleep(for: .milliseconds(milliseconds))
    }
}
