import Testing
@Test func placeholder_BitSwitchPassesTests() {}
