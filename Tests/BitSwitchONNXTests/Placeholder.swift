import Testing
@Test func placeholder_BitSwitchONNXTests() {}
