// swift-tools-version: 6.1
import PackageDescription

// Hot loops live in C (CKernels) and are always compiled optimised, so debug test builds stay fast. No -march=native:
// the binary runs on any x86-64 and CKernels picks its AVX2 or AVX-512 kernels at run time (isa.c).
let kernelFlags: [CSetting] = [.unsafeFlags(["-O3", "-fno-math-errno", "-ffp-contract=off"])]

let package = Package(
    name: "BitSwitch",
    products: [
        .library(name: "BitSwitch", targets: ["BitSwitchIR", "BitSwitchONNX", "BitSwitchRuntime", "BitSwitchData",
                                              "BitSwitchQuant", "BitSwitchPasses", "BitSwitchCodegen"]),
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
        // gzip-compressed IDX files (MNIST, Fashion-MNIST as shipped) are read through the system zlib.
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),

        .target(name: "BitSwitchIR"),
        .target(name: "BitSwitchONNX", dependencies: ["BitSwitchIR", "CONNX", "CProtobufC"]),
        .target(name: "BitSwitchRuntime", dependencies: ["BitSwitchIR", "BitSwitchData", "CBLAS", "CKernels"]),
        .target(name: "BitSwitchData", dependencies: ["CZlib"]),
        // The C back end: depends on the IR only; its portable C kernels ship as resources copied into bundles.
        .target(name: "BitSwitchCodegen", dependencies: ["BitSwitchIR"], resources: [.copy("Runtime")]),
        .target(name: "BitSwitchQuant", dependencies: ["BitSwitchIR", "BitSwitchRuntime", "BitSwitchData", "CKernels",
                                                      "CGLPK"]),
        .target(name: "BitSwitchPasses", dependencies: ["BitSwitchIR", "BitSwitchRuntime", "BitSwitchQuant",
                                                       "BitSwitchData", .product(name: "Yams", package: "Yams")]),
        .executableTarget(name: "bitswitch", dependencies: [
            "BitSwitchIR", "BitSwitchONNX", "BitSwitchRuntime", "BitSwitchData", "BitSwitchQuant", "BitSwitchPasses",
            "BitSwitchCodegen", .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .testTarget(name: "BitSwitchIRTests", dependencies: ["BitSwitchIR"]),
        .testTarget(name: "BitSwitchONNXTests", dependencies: ["BitSwitchONNX", "BitSwitchRuntime"],
                    resources: [.copy("Fixtures")]),
        .testTarget(name: "BitSwitchRuntimeTests", dependencies: ["BitSwitchRuntime", "BitSwitchData"], exclude: ["Fixtures"]),
        .testTarget(name: "BitSwitchDataTests", dependencies: ["BitSwitchData"], exclude: ["Fixtures"]),
        .testTarget(name: "BitSwitchQuantTests", dependencies: ["BitSwitchQuant"], exclude: ["golden"]),
        .testTarget(name: "BitSwitchPassesTests", dependencies: ["BitSwitchPasses", "BitSwitchONNX"], exclude: ["golden"]),
        .testTarget(name: "BitSwitchCodegenTests", dependencies: ["BitSwitchCodegen", "BitSwitchRuntime", "BitSwitchIR"]),
        .testTarget(name: "CLITests", dependencies: ["BitSwitchData"], exclude: ["Fixtures"]),
    ]
)
