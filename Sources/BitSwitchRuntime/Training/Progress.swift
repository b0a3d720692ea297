import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Training progress on stderr: a live bar redrawn in place when stderr is a terminal, otherwise one line per epoch
/// (logs and CI output stay readable).
public final class ProgressReporter {
    public enum Style { case bar, lines, silent }
    public let style: Style
    private var lastDraw = 0.0

    public init(style: Style? = nil) {
        self.style = style ?? (isatty(2) != 0 ? .bar : .lines)
    }

    /// Called after every batch; redraws at most ten times a second.
    /// With the line style, also a line every this many steps (long epochs of a language model).
    public var logEverySteps: Int? = nil

    func batch(epoch: Int, epochs: Int, step: Int, steps: Int, loss: Double, accuracy: Double,
               samplesPerSecond: Double, eta: Double) {
        if style == .lines, let n = logEverySteps, n > 0, step % n == 0 {
            write(String(format: "epoch %d/%d step %d/%d: train loss %.4f acc %.2f%%, %.1f samples/s, ETA %@\n",
                         epoch, epochs, step, steps, loss, 100 * accuracy, samplesPerSecond, ProgressReporter.clock(eta)))
        }
        guard style == .bar else { return }
        let now = ProcessInfo.processInfo.systemUptime
        if step < steps && now - lastDraw < 0.1 { return }
        lastDraw = now
        let width = 20
        let filled = steps > 0 ? width * step / steps : width
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        write("\r\u{1B}[2K" + String(format: "epoch %d/%d [%@] %d/%d loss %.4f acc %.2f%% %.0f samples/s ETA %@",
                                    epoch, epochs, bar, step, steps, loss, 100 * accuracy, samplesPerSecond,
                                    ProgressReporter.clock(eta)))
    }

    func epochDone(_ r: EpochRecord, epochs: Int) {
        guard style != .silent else { return }
        var line = String(format: "epoch %d/%d: train loss %.4f acc %.2f%%", r.epoch, epochs, r.trainLoss,
                          100 * r.trainAccuracy)
        if let l = r.testLoss, let a = r.testAccuracy { line += String(format: ", test loss %.4f acc %.2f%%", l, 100 * a) }
        line += String(format: ", lr %.3g, %.1f s, %.0f samples/s", r.learningRate, r.seconds, r.samplesPerSecond)
        write((style == .bar ? "\r\u{1B}[2K" : "") + line + "\n")
    }

    func message(_ s: String) {
        guard style != .silent else { return }
        write(s + "\n")
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--:--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%d:%02d", s / 60, s % 60)
    }

    private func write(_ s: String) {
        FileHandle.standardError.write(Data(s.utf8))
    }
}
