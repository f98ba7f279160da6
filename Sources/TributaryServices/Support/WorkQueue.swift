/// Hands out work items to parallel workers, once each.
actor WorkQueue<Item: Sendable> {
    private var items: [Item]
    private var next = 0

    init(_ items: [Item]) { self.items = items }

    func take() -> Item? {
        guard next < items.count else { return nil }
        defer { next += 1 }
        return items[next]
    }
}
