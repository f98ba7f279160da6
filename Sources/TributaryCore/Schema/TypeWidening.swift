/// Which type changes of a source column STG follows on its own: those under which every value
/// keeps its text form (what verify compares), so the same `ALTER … TYPE` on STG keeps it equal to
/// the source row for row. Types as `format_type` writes them (`character varying(20)`).
public enum TypeWidening {
    /// Whether a column of type `old` may become `new` by widening: integer → bigint (and smallint
    /// up), real → double precision, varchar(n) → varchar(m ≥ n), varchar or text, numeric(p,s) →
    /// numeric with no fewer digits on either side of the point (or unconstrained), and the same
    /// for arrays of them.
    public static func widens(from old: String, to new: String) -> Bool {
        guard old != new else { return true }
        if old.hasSuffix("[]") || new.hasSuffix("[]") {
            guard old.hasSuffix("[]") && new.hasSuffix("[]") else { return false }
            return widens(from: String(old.dropLast(2)), to: String(new.dropLast(2)))
        }
        let integers = ["smallint", "integer", "bigint"]
        if let from = integers.firstIndex(of: old), let to = integers.firstIndex(of: new) { return to >= from }
        if old == "real" && new == "double precision" { return true }
        let (oldBase, oldModifiers) = split(old), (newBase, newModifiers) = split(new)
        switch (oldBase, newBase) {
        case ("character varying", "text"):
            return true
        case ("character varying", "character varying"):
            guard let length = newModifiers.first else { return true }
            return oldModifiers.first.map { length >= $0 } ?? false
        case ("numeric", "numeric"):
            guard !newModifiers.isEmpty else { return true }
            guard !oldModifiers.isEmpty else { return false }
            let (oldPrecision, oldScale) = (oldModifiers[0], oldModifiers.count > 1 ? oldModifiers[1] : 0)
            let (newPrecision, newScale) = (newModifiers[0], newModifiers.count > 1 ? newModifiers[1] : 0)
            return newScale >= oldScale && newPrecision - newScale >= oldPrecision - oldScale
        default:
            return false
        }
    }

    /// `numeric(12,2)` → (`numeric`, [12, 2]); a name without modifiers → (name, []).
    static func split(_ type: String) -> (String, [Int]) {
        guard let open = type.firstIndex(of: "("), let close = type.lastIndex(of: ")"), open < close else { return (type, []) }
        let numbers = type[type.index(after: open)..<close].split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        return (String(type[..<open]).trimmingCharacters(in: .whitespaces), numbers)
    }
}
