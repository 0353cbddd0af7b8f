package clickhouse

// SharedServer is the package's test server, for the tests in package
// clickhouse_test (which run the contract suites of internal/storetest).
var SharedServer = server
