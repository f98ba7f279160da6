/// Whether every change in a CDC file has a key of its own. Then the merge takes the file's rows
/// as they are, instead of sorting them all to find each key's newest change: on a table of wide
/// rows that sort, spilled to disk, was a third of the target's merge time.
///
/// Keys are told apart by their text form, which is exact only for types whose text form is
/// canonical, one text per value: for others (`numeric` has `1.0` and `1.00`, a domain or an
/// enum may compare otherwise) the check does not apply, and the file is merged with the sort.
public struct DistinctKeyCheck: Sendable {
    /// Built-in types whose equal values have equal text forms and unequal values unequal ones
    /// (text compared bytewise: STG columns take the target's default collation, deterministic).
    static let canonicalTextTypes: Set<UInt32> = [
        16, // bool
        17, // bytea
        20, 21, 23, // int8, int2, int4
        25, 1043, // text, varchar
        26, // oid
        1082, // date
        2950, // uuid
    ]

    /// A file past this many keys is merged with the sort rather than held in memory.
    public static let maximumKeys = 4_000_000

    private let keyPositions: [Int]
    private var seen: Set<Int> = []
    /// nil: the key's types cannot be told apart by their text; false: a key came twice (or
    /// could not be read).
    public private(set) var holds: Bool?

    public init(relation: RelationSchema, keyPositions: [Int]) {
        self.keyPositions = keyPositions
        let applies = !keyPositions.isEmpty && keyPositions.allSatisfy {
            $0 < relation.columns.count && Self.canonicalTextTypes.contains(relation.columns[$0].typeOid)
        }
        holds = applies ? true : nil
    }

    /// Records one row of the file. A TRUNCATE row has no key and is never merged as a row.
    public mutating func record(_ operation: ChangeOperation, _ values: [PgOutputMessage.TupleValue]) {
        guard holds == true, operation != .truncate else { return }
        var hasher = Hasher()
        for position in keyPositions {
            guard position < values.count, case .text(let bytes) = values[position] else { return giveUp() }
            hasher.combine(bytes.count)
            bytes.withUnsafeBytes { hasher.combine(bytes: $0) }
        }
        // Two keys that hash alike count as a repeat: the file is then merged with the sort, which
        // is right either way.
        guard seen.insert(hasher.finalize()).inserted, seen.count <= Self.maximumKeys else { return giveUp() }
    }

    private mutating func giveUp() {
        holds = false
        seen = []
    }
}
