// swift-tools-version: 6.1
import PackageDescription

// Hot loops live in C (CKernels) and are always compiled optimised, so debug test builds stay fast.
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-march=native", "-fno-math-errno"])]

let package = Package(
    name: "BitSwitch",
    products: [
        .library(name: "BitSwitch", targets: ["BitSwitchIR", "BitSwitchONNX", "BitSwitchRuntime", "BitSwitchData",
                                              "BitSwitchQuant", "BitSwitchPasses"]),
        .executable(name: "bitswitch", targets: ["bitswitch"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CProtobufC", pkgConfig: "libprotobuf-c",
                       providers: [.apt(["libprotobuf-c-dev"])]),
        .target(name: "CONNX", dependencies: ["CProtobufC"],
                linkerSettings: [.linkedLibrary("protobuf-c")]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        // GLPK (no pkg-config file in Debian's libglpk-dev): the exact ILP of mixed-precision bit assignment.
        .systemLibrary(name: "CGLPK", providers: [.apt(["libglpk-dev"])]),
        .target(name: "CKernels", cSettings: kernelFlags),

        .target(name: "BitSwitchIR"),
        .target(name: "BitSwitchONNX", dependencies: ["BitSwitchIR", "CONNX", "CProtobufC"]),
        .target(name: "BitSwitchRuntime", dependencies: ["BitSwitchIR", "BitSwitchData", "CBLAS", "CKernels"]),
        .target(name: "BitSwitchData"),
        .target(name: "BitSwitchQuant", dependencies: ["BitSwitchIR", "BitSwitchRuntime", "BitSwitchData", "CKernels",
                                                      "CGLPK"]),
        .target(name: "BitSwitchPasses", dependencies: ["BitSwitchIR", "BitSwitchRuntime", "BitSwitchQuant",
                                                       "BitSwitchData", .product(name: "Yams", package: "Yams")]),
        .executableTarget(name: "bitswitch", dependencies: [
            "BitSwitchIR", "BitSwitchONNX", "BitSwitchRuntime", "BitSwitchData", "BitSwitchQuant", "BitSwitchPasses",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "BitSwitchIRTests", dependencies: ["BitSwitchIR"]),
        .testTarget(name: "BitSwitchONNXTests", dependencies: ["BitSwitchONNX", "BitSwitchRuntime"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "BitSwitchRuntimeTests", dependencies: ["BitSwitchRuntime", "BitSwitchData"], exclude: ["Fixtures"]),
        .testTarget(name: "BitSwitchDataTests", dependencies: ["BitSwitchData"], exclude: ["Fixtures"]),
        .testTarget(name: "BitSwitchQuantTests", dependencies: ["BitSwitchQuant"], exclude: ["golden"]),
        .testTarget(name: "BitSwitchPassesTests", dependencies: ["BitSwitchPasses", "BitSwitchONNX"], exclude: ["golden"]),
        .testTarget(name: "CLITests", dependencies: ["BitSwitchData"], exclude: ["Fixtures"]),
    ]
)
