import Testing
@Test func placeholder_BitSwitchIRTests() {}
