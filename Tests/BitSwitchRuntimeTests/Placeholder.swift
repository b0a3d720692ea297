import Testing
@Test func placeholder_BitSwitchRuntimeTests() {}
