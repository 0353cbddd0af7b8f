package chstore

// ServerDatabase is serverDatabase, for the tests in package chstore_test
// (which run the contract suites of internal/storetest).
var ServerDatabase = serverDatabase
