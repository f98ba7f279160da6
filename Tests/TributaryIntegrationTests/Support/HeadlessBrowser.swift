import Foundation

/// Debian's Chromium, headless: a page as a browser renders it once its scripts have run.
enum HeadlessBrowser {
    static let path = "/usr/bin/chromium"

    /// The DOM of `url` after `milliseconds` of the page's own (virtual) time: its script has
    /// fetched and drawn the status by then. Root needs `--no-sandbox`.
    static func dom(_ url: String, milliseconds: Int = 5000) async throws -> String {
        let outcome = try await TestProcess.run(path, arguments(url, milliseconds) + ["--dump-dom", url])
        guard outcome.status == 0, outcome.standardOutput.contains("</html>") else {
            throw TestFailure("chromium could not render \(url) (status \(outcome.status)): \(outcome.standardError.suffix(1500))")
        }
        return outcome.standardOutput
    }

    /// A PNG of the page, for a person to look at.
    static func screenshot(_ url: String, to path: String, width: Int = 1280, height: Int = 1400, milliseconds: Int = 5000) async throws {
        let outcome = try await TestProcess.run(Self.path, arguments(url, milliseconds) + ["--window-size=\(width),\(height)", "--screenshot=\(path)", url])
        guard outcome.status == 0 else { throw TestFailure("chromium could not take a screenshot: \(outcome.standardError.suffix(1500))") }
    }

    private static func arguments(_ url: String, _ milliseconds: Int) -> [String] {
        ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
         "--user-data-dir=\(NSTemporaryDirectory())chromium-\(UUID().uuidString.prefix(8))", "--virtual-time-budget=\(milliseconds)"]
    }

    /// What the page shows of source `name`: the text of each `data-field` in its article, and the
    /// `data-value` of those that have one.
    static func source(_ name: String, in dom: String) -> (fields: [String: String], values: [String: String], warnings: [String])? {
        guard let start = dom.range(of: #"<article class="source" data-source="\#(name)">"#) else { return nil }
        let article = dom[start.upperBound...]
        let end = article.range(of: "</article>").map { article[..<$0.lowerBound] } ?? article
        var fields: [String: String] = [:], values: [String: String] = [:], warnings: [String] = []
        for match in end.matches(of: /data-field="([a-z-]+)"(?: data-value="([^"]*)")?>([^<]*)</) {
            let field = String(match.1)
            if field == "warning" { warnings.append(unescape(String(match.3))) } else { fields[field] = unescape(String(match.3)) }
            if let value = match.2 { values[field] = String(value) }
        }
        return (fields, values, warnings)
    }

    static func unescape(_ text: String) -> String {
        text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&amp;", with: "&")
    }
}
