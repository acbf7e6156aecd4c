import EarshotProtocol
import Testing

/// The command parser (what the daemon accepts) and the builder (what `earshot tail` and the tests send).
@Suite struct CommandTests {
    let all = Set(Feature.allCases)

    func parse(_ text: String, enabled: Set<Feature>? = nil) -> Result<ProtocolCommand, ProtocolError> {
        ProtocolCommand.parse(Array(text.utf8), enabledFeatures: enabled ?? all)
    }
    func code(_ text: String, enabled: Set<Feature>? = nil) -> ProtocolError.Code? {
        if case .failure(let e) = parse(text, enabled: enabled) { return e.code }
        return nil
    }

    @Test func everyCommand() throws {
        #expect(try parse(#"{"op":"ping"}"#).get() == .ping(id: nil))
        #expect(try parse(#" {"id":"a","op":"ping","extra":[1,{"x":null}]} "#).get() == .ping(id: .string("a")))
        #expect(try parse(#"{"op":"unsubscribe","streams":["onset","onset","frame"],"id":8}"#).get()
                == .unsubscribe(streams: [.onset, .frame], id: .number(8, integer: 8)))
        #expect(try parse(#"{"op":"subscribe","streams":["frame","rolling"],"every":10,"fields":["laf","logmel"],"backfill_s":1.5,"id":null}"#).get()
                == .subscribe(streams: [.frame, .rolling], every: 10, fields: [.laf, .logmel], backfillSeconds: 1.5, id: .null))
        #expect(try parse(#"{"op":"subscribe","streams":[],"every":null,"fields":null,"backfill_s":null}"#).get()
                == .subscribe(streams: [], every: nil, fields: nil, backfillSeconds: nil, id: nil))
        #expect(try parse(#"{"op":"subscribe","streams":["stats"],"every":1000000,"backfill_s":0}"#).get()
                == .subscribe(streams: [.stats], every: 1_000_000, fields: nil, backfillSeconds: 0, id: nil))
    }

    /// Whatever the builder writes, the parser reads back as the same command (ids with every kind of
    /// character included).
    @Test func builderRoundTrips() throws {
        let ids: [ProtocolJSON?] = [nil, .null, .number(-3, integer: -3), .number(0.25, integer: nil), .number(0.1, integer: nil),
                                    .number(123.456789012345678, integer: nil), .number(1e300, integer: nil),
                                    .number(-2.5e-300, integer: nil), .number(5, integer: nil), .string(""),
                                    .string("quote\" back\\slash\n\r\t\u{0}\u{1f} é 😀 \u{2028}")]
        for id in ids {
            let commands: [ProtocolCommand] = [
                .ping(id: id),
                .unsubscribe(streams: StreamKind.allCases, id: id),
                .subscribe([.frame, .onset], every: 3, fields: [.mfcc, .rmsDbfs], backfillSeconds: 0.1, id: id),
                .subscribe([.rolling], backfillSeconds: 600, id: id),
                .subscribe([.rolling], backfillSeconds: 1.0 / 3, id: id),
                .subscribe([.rolling], backfillSeconds: 1e-7, id: id),
                .subscribe([], id: id),
            ]
            for c in commands {
                let line = c.line()
                #expect(line.last == 0x0A && !line.dropLast().contains(0x0A))
                #expect(try ProtocolCommand.parse(line.dropLast(), enabledFeatures: all).get() == c, "\(c.text)")
            }
        }
        #expect(ProtocolCommand.subscribe([.frame, .onset], every: 10).text == #"{"op":"subscribe","streams":["frame","onset"],"every":10}"#)
        #expect(ProtocolCommand.ping(id: .string("a\"b")).text == #"{"op":"ping","id":"a\"b"}"#)
    }

    @Test func streamListFromTheCommandLine() throws {
        #expect(try StreamKind.parseList("frame, onset,frame").get() == [.frame, .onset])
        guard case .failure(let e) = StreamKind.parseList("frame,\"x") else { Issue.record("accepted"); return }
        #expect(e.code == .unknownStream && e.message.contains("'\"x'") && e.message.contains("known: frame, rolling"))
    }

    @Test func wrongTypesAndValues() {
        let cases: [(String, ProtocolError.Code)] = [
            (#"[]"#, .notObject), (#""ping""#, .notObject), (#"42"#, .notObject), (#"null"#, .notObject),
            (#"{}"#, .missingOp), (#"{"op":1}"#, .invalidType), (#"{"op":null}"#, .invalidType), (#"{"op":["ping"]}"#, .invalidType),
            (#"{"op":"PING"}"#, .unknownOp), (#"{"op":"subscribe "}"#, .unknownOp), (#"{"op":""}"#, .unknownOp),
            (#"{"op":"subscribe"}"#, .invalidType), (#"{"op":"subscribe","streams":"frame"}"#, .invalidType),
            (#"{"op":"subscribe","streams":[1]}"#, .invalidType), (#"{"op":"subscribe","streams":["frames"]}"#, .unknownStream),
            (#"{"op":"unsubscribe","streams":{}}"#, .invalidType), (#"{"op":"unsubscribe"}"#, .invalidType),
            (#"{"op":"subscribe","streams":[],"every":2.5}"#, .invalidType), (#"{"op":"subscribe","streams":[],"every":"2"}"#, .invalidType),
            (#"{"op":"subscribe","streams":[],"every":2e0}"#, .invalidType), (#"{"op":"subscribe","streams":[],"every":0}"#, .invalidValue),
            (#"{"op":"subscribe","streams":[],"every":-1}"#, .invalidValue), (#"{"op":"subscribe","streams":[],"every":1000001}"#, .invalidValue),
            (#"{"op":"subscribe","streams":[],"fields":"laf"}"#, .invalidType), (#"{"op":"subscribe","streams":[],"fields":[true]}"#, .invalidType),
            (#"{"op":"subscribe","streams":[],"fields":["nope"]}"#, .unknownField),
            (#"{"op":"subscribe","streams":[],"backfill_s":"1"}"#, .invalidType), (#"{"op":"subscribe","streams":[],"backfill_s":-0.5}"#, .invalidValue),
            (#"{"op":"ping","id":{}}"#, .invalidType), (#"{"op":"ping","id":[1]}"#, .invalidType), (#"{"op":"ping","id":true}"#, .invalidType),
            ("{\"op\":\"ping\",\"id\":\"\(String(repeating: "x", count: 257))\"}", .invalidType),
            // An integer id beyond Int64 would be echoed as a different number (attack run: 1.2345678901234567e+19).
            (#"{"op":"ping","id":12345678901234567890}"#, .invalidJSON), (#"{"op":"ping","id":-9223372036854775809}"#, .invalidJSON),
        ]
        for (text, expected) in cases { #expect(code(text) == expected, "\(text)") }
        #expect(code(#"{"op":"subscribe","streams":[],"fields":["mfcc"]}"#, enabled: [.laf]) == .unknownField)
        #expect(code("{\"op\":\"ping\",\"id\":\"\(String(repeating: "x", count: 256))\"}") == nil)
        for ok in [#"{"op":"ping","id":9223372036854775807}"#, #"{"op":"ping","id":-9223372036854775808}"#, #"{"op":"ping","id":1.5}"#, #"{"op":"ping","id":1e300}"#] {
            #expect(code(ok) == nil, "\(ok)")
        }
        // The id is echoed in errors once it could be read.
        guard case .failure(let e) = parse(#"{"op":"nope","id":"q"}"#) else { Issue.record("accepted"); return }
        #expect(e.id == .string("q") && e.message.contains("'nope'"))
        #expect(e.text == #"{"type":"error","code":"unknown_op","message":"unknown op 'nope'; known: subscribe, unsubscribe, ping","id":"q"}"# + "\n")
    }

    @Test func hugeNumbers() {
        #expect(code(#"{"op":"subscribe","streams":[],"every":1e400}"#) == .invalidJSON)
        #expect(code(#"{"op":"subscribe","streams":[],"every":-1e400}"#) == .invalidJSON)
        #expect(code(#"{"op":"subscribe","streams":[],"every":99999999999999999999}"#) == .invalidJSON)  // an integer beyond Int64
        #expect(code(#"{"op":"subscribe","streams":[],"every":9223372036854775807}"#) == .invalidValue)
        #expect(code(#"{"op":"subscribe","streams":[],"backfill_s":1e308}"#) == nil)
        #expect(code("{\"op\":\"ping\",\"id\":\(String(repeating: "9", count: 400))}") == .invalidJSON)
        #expect(code(#"{"op":"ping","id":1e-400}"#) == nil)  // underflows to 0: a finite number
    }

    @Test func truncatedInputIsInvalidJSONAtEveryCut() {
        let whole = Array(#"{"op":"subscribe","streams":["frame","onset"],"every":10,"fields":["laf"],"id":"\u00e9\ud83d\ude00"}"#.utf8)
        #expect(code(String(decoding: whole, as: UTF8.self)) == nil)
        for n in 0..<whole.count {
            let r = ProtocolCommand.parse(whole[..<n], enabledFeatures: all)
            guard case .failure(let e) = r else { Issue.record("prefix of \(n) bytes accepted"); continue }
            #expect(e.code == .invalidJSON, "prefix \(n): \(e.message)")
        }
    }

    @Test func malformedJSON() {
        for text in [#"{"op":"ping",}"#, #"{"op" "ping"}"#, #"{'op':'ping'}"#, #"{"op":"ping"} {}"#, #"{"op":"ping"}x"#,
                     #"{"op":tru}"#, #"{"op":"a\x"}"#, #"{"op":"\ud800"}"#, #"{"op":"\udc00"}"#, #"{"op":"\u12"}"#,
                     "{\"op\":\"a\u{1}\"}", #"{"every":01}"#, #"{"every":1.}"#, #"{"every":.5}"#, #"{"every":+1}"#, #"{"every":-}"#, ""] {
            #expect(code(text) == .invalidJSON, "\(text.debugDescription)")
        }
    }

    @Test func invalidUTF8() {
        for bytes: [UInt8] in [[0xFF], [0xC0, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xE2, 0x82], [0x80]] {
            let line = Array(#"{"op":"ping","id":""#.utf8) + bytes + Array(#""}"#.utf8)
            guard case .failure(let e) = ProtocolCommand.parse(line, enabledFeatures: all) else { Issue.record("accepted \(bytes)"); continue }
            #expect(e.code == .invalidUTF8 && e.id == nil)
        }
    }

    @Test func deepNesting() {
        func nested(_ depth: Int) -> String {
            "{\"op\":\"ping\",\"x\":" + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        }
        #expect(code(nested(32)) == nil)  // 32 levels inside the command object
        #expect(code(nested(33)) == .invalidJSON)
        #expect(code(nested(100_000)) == .invalidJSON)  // no stack overflow
        #expect(code(String(repeating: "{\"a\":", count: 50_000)) == .invalidJSON)
    }

    @Test func lineFraming() {
        var b = CommandLineBuffer(maxLineBytes: 16)
        let input = Array("{\"op\":\"ping\"}\r\n\nabc".utf8)
        input.withUnsafeBytes { b.append($0) }
        #expect(b.next() == .line(Array(#"{"op":"ping"}"#.utf8)))
        #expect(b.next() == .line([]))
        #expect(b.next() == .needMore)
        #expect(!b.endsWithNewline)
        Array(String(repeating: "x", count: 20).utf8).withUnsafeBytes { b.append($0) }
        #expect(b.next() == .tooLong(23))
    }
}
