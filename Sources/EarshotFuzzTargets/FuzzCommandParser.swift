import EarshotPipeline
import EarshotProtocol
import EarshotSinks

/// Fuzz target body (corpus: Fuzz/corpus/command). Must be total: no trap, no hang, bounded memory, for any bytes.
///
/// Runs what the socket runs on client bytes: the input is fed to a ``CommandLineBuffer`` in reads of
/// varying size (the first byte picks the read size), every whole line is parsed as a command with
/// ``ProtocolCommand/parse(_:enabledFeatures:)`` and errors are rendered as the socket would send them; the
/// whole input is also parsed as one line. Every accepted command is written back with the client-side
/// builder and must parse to the same command. The line limit is small so the `line_too_long` path is reached.
public func fuzzCommandParser(_ data: UnsafeRawBufferPointer) {
    let features = Set(Feature.allCases)
    var lines = CommandLineBuffer(maxLineBytes: 1024)
    let chunk = 1 + Int(data.first ?? 0) * 3
    var offset = 0
    var open = true
    while open, offset < data.count {
        let n = min(chunk, data.count - offset)
        lines.append(UnsafeRawBufferPointer(rebasing: data[offset..<(offset + n)]))
        offset += n
        while open {
            switch lines.next() {
            case .needMore: break
            case .tooLong: open = false  // the socket sends line_too_long and closes
            case .line(let line):
                check(ProtocolCommand.parse(line, enabledFeatures: features))
                continue
            }
            break
        }
        precondition(!open || lines.count <= 1024 + n, "command buffer grew past one line and one read")
    }
    check(ProtocolCommand.parse(data.bindMemory(to: UInt8.self), enabledFeatures: features))
}

private func check(_ result: Result<ProtocolCommand, ProtocolError>) {
    switch result {
    case .success(let command):
        if case .subscribe(_, let every?, _, _, _) = command { precondition(every >= 1 && every <= 1_000_000) }
        // The client-side builder writes every accepted command so that the parser reads the same command.
        let line = command.line()
        precondition(line.last == 0x0A && !line.dropLast().contains(0x0A), "a built command must be one line")
        guard case .success(let again) = ProtocolCommand.parse(line.dropLast(), enabledFeatures: Set(Feature.allCases)) else {
            preconditionFailure("a built command must parse")
        }
        precondition(again == command, "builder and parser disagree")
    case .failure(let error):
        let line = error.line()
        precondition(line.last == 0x0A && !line.dropLast().contains(0x0A), "an error reply must be one line")
    }
}

