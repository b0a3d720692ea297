import ArgumentParser
@main struct BitSwitchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bitswitch")
    func run() throws {}
}
