import Testing
@Test func placeholder_BitSwitchDataTests() {}
