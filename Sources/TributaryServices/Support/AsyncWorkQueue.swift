/// A queue that workers wait on until items arrive or the producer finishes.
actor AsyncWorkQueue<Item: Sendable> {
    private var items: [Item] = []
    private var head = 0
    private var finished = false
    private var waiters: [CheckedContinuation<Item?, Never>] = []

    func push(_ item: Item) {
        if !waiters.isEmpty {
            waiters.removeFirst().resume(returning: item)
        } else {
            items.append(item)
        }
    }

    /// No more items; waiting workers get nil.
    func finish() {
        finished = true
        for waiter in waiters { waiter.resume(returning: nil) }
        waiters.removeAll()
    }

    func next() async -> Item? {
        if head < items.count {
            defer { head += 1 }
            return items[head]
        }
        if finished { return nil }
        return await withCheckedContinuation { waiters.append($0) }
    }
}
