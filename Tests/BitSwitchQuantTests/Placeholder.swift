import Testing
@Test func placeholder_BitSwitchQuantTests() {}
