import EarshotDSP
import EarshotPipeline
import EarshotProtocol
import Foundation
import Testing

/// docs/protocol.md cannot drift from the code: every JSON example in it is decoded with the real decoder,
/// re-encoded with the real encoder and must come out the same; frame and onset examples carry exactly the
/// keys the frame encoder writes; error examples are what the parser answers; every command the doc shows is
/// accepted by the parser; the error tables list exactly the codes the server can send. (The values that
/// depend on the running daemon's defaults — limits, `onset_lookahead_ms`, the `stats` stages — are compared
/// with a live daemon by EarshotEndToEndTests' `OneLinerTests`.)
@Suite struct DocExamplesTests {
    static let docURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("docs/protocol.md")

    /// The doc's fenced blocks of `language`.
    static func blocks(_ language: String) throws -> [String] {
        let text = try String(contentsOf: docURL, encoding: .utf8)
        var out: [String] = []
        var current: [String]? = nil
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if current == nil, line == "```\(language)" { current = []; continue }
            if current != nil, line == "```" { out.append(current!.joined(separator: "\n")); current = nil; continue }
            current?.append(String(line))
        }
        return out
    }

    /// The JSON messages of the `json` blocks: one per line, or several lines joined when the example is
    /// shown wrapped.
    static func examples() throws -> [ProtocolJSON] {
        var out: [ProtocolJSON] = []
        for block in try blocks("json") {
            var pending = ""
            for line in block.split(separator: "\n") {
                pending += line
                if let v = try? ProtocolJSON.parse(Array(pending.utf8)) { out.append(v); pending = "" }
            }
            #expect(pending.isEmpty, "unparsable example: \(pending)")
        }
        return out
    }

    /// Removes the `"…"` placeholders the doc uses to shorten arrays.
    static func stripPlaceholders(_ v: ProtocolJSON) -> ProtocolJSON {
        switch v {
        case .array(let a): .array(a.filter { !($0.stringValue?.hasPrefix("…") ?? false) }.map(stripPlaceholders))
        case .object(let o): .object(o.mapValues(stripPlaceholders))
        default: v
        }
    }

    @Test func everyExampleDecodesAndReEncodesUnchanged() throws {
        let examples = try Self.examples()
        var types = Set<String>()
        for raw in examples {
            let example = Self.stripPlaceholders(raw)
            let type = try #require(example["type"]?.stringValue)
            types.insert(type)
            switch type {
            case FrameMessage.type:
                let keys = Set(try #require(example.objectValue).keys)
                #expect(keys == FrameMessage.keys(features: Set(Feature.allCases)).subtracting([FrameMessage.discontinuity, FrameMessage.gapSamples, FrameMessage.cause]),
                        "the frame example shows every feature: \(keys.sorted())")
                for f in Feature.allCases {
                    #expect(f.kind == .vector ? example[f.rawValue]?.arrayValue != nil : example[f.rawValue]?.doubleValue != nil, "\(f)")
                }
            case OnsetMessage.type:
                #expect(Set(try #require(example.objectValue).keys) == Set(OnsetMessage.keys))
            default:
                let message: any DecodableServerMessage
                do { message = try decodeServerMessage(example) } catch {
                    Issue.record("\(type) example does not decode: \(error): \(raw.jsonText)"); continue
                }
                let again = try ProtocolJSON.parse(message.line().dropLast())
                #expect(again == example, "\(type): the encoder writes\n\(again.jsonText)\nthe doc shows\n\(example.jsonText)")
            }
        }
        let documented: Set<String> = [FrameMessage.type, OnsetMessage.type].reduce(into: Set(decodableServerMessages.keys)) { $0.insert($1) }
        #expect(types == documented, "message types without an example: \(documented.subtracting(types).sorted())")
    }

    @Test func helloExampleMatchesTheDefaultAnalysis() throws {
        let hello = try #require(try Self.examples().first { $0["type"]?.stringValue == HelloMessage.type })
        let a = AnalyzerConfig()
        #expect(hello["sample_rate"]?.intValue == Int64(a.sampleRate))
        #expect(hello["n_fft"]?.intValue == Int64(a.nFFT))
        #expect(hello["hop"]?.intValue == Int64(a.hop))
        #expect(hello["n_mels"]?.intValue == Int64(a.nMels))
        #expect(hello["n_mfcc"]?.intValue == Int64(a.nMFCC))
        #expect(hello["onset_lookahead_ms"]?.doubleValue == (a.onsetLookAheadDuration * 1e6).rounded() / 1e3)
    }

    @Test func errorExamplesAreWhatTheParserSays() throws {
        for example in try Self.examples() where example["type"]?.stringValue == ErrorMessage.type {
            let e = try ErrorMessage.decode(example)
            guard e.code == .unknownStream else { continue }
            // The doc's example answers a subscribe to the misspelled stream it names.
            let name = try #require(e.message.split(separator: "'").dropFirst().first.map(String.init))
            let command = ProtocolCommand.parse(
                Array(#"{"op":"subscribe","streams":["\#(name)"],"id":\#(e.id?.jsonText ?? "null")}"#.utf8),
                enabledFeatures: Set(Feature.allCases))
            guard case .failure(let actual) = command else { Issue.record("accepted"); continue }
            #expect(actual == e)
        }
    }

    /// The commands shown in the shell and Python examples (`'{"op":…}'` and `b"{\"op\":…}\n"`) parse.
    @Test func commandsInExamplesParse() throws {
        let text = try String(contentsOf: Self.docURL, encoding: .utf8)
            + String(contentsOf: Self.docURL.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        var commands: [String] = []
        var rest = Substring(text)
        while let r = rest.range(of: "{\"op\":") ?? rest.range(of: "{\\\"op\\\":") {
            let tail = rest[r.lowerBound...]
            let end = tail.firstIndex(where: { $0 == "'" || $0 == "`" || $0 == "\n" }) ?? tail.endIndex
            var cmd = String(tail[..<end])
            if cmd.hasSuffix("\\n") { cmd.removeLast(2) }
            if cmd.contains("\\\"") { cmd = cmd.replacingOccurrences(of: "\\\"", with: "\"").replacingOccurrences(of: "\\n\"", with: "") }
            commands.append(cmd)
            rest = tail[end...]
        }
        #expect(commands.count >= 8)
        var placeholders = 0
        for cmd in commands {
            // Table rows write values as N, S, X.
            if cmd.contains(":N") || cmd.contains(":X") { placeholders += 1; continue }
            let r = ProtocolCommand.parse(Array(cmd.utf8), enabledFeatures: Set(Feature.allCases))
            if case .failure(let e) = r { Issue.record("\(cmd): \(e.message)") }
        }
        #expect(placeholders <= 3)
    }

    /// The two error tables list exactly the codes the server sends, and say which ones close the connection.
    @Test func errorTablesListEveryCode() throws {
        let text = try String(contentsOf: Self.docURL, encoding: .utf8)
        func codes(after heading: String) throws -> Set<String> {
            let start = try #require(text.range(of: heading)).upperBound
            var out = Set<String>()
            for line in text[start...].split(separator: "\n").dropFirst(2) {
                guard line.hasPrefix("|") else { break }
                let first = line.split(separator: "|").first ?? ""
                for part in first.split(separator: "`") where !part.contains(" ") && !part.contains("/") { out.insert(String(part)) }
            }
            return out
        }
        let open = try codes(after: "### Errors (the connection stays open)")
        let closing = try codes(after: "### Errors that close the connection")
        let codes = ProtocolError.Code.allCases
        #expect(open == Set(codes.filter { !$0.closesConnection }.map(\.rawValue)))
        #expect(closing == Set(codes.filter(\.closesConnection).map(\.rawValue)))
    }
}
