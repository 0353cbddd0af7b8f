package clickhouse

// SharedServer is the package's test server, for the tests in package
// clickhouse_test (which run the contract suites of internal/storetest).
var SharedServer = server

// IncrementalGroupings counts the groupings an incremental Source keeps
// partial aggregates for, which bounds the buckets a steady evaluation
// reads (storetest.IncrementalStepAfterStep).
func IncrementalGroupings(s *Source) int {
	if s.inc == nil {
		return 0
	}
	s.inc.mu.Lock()
	defer s.inc.mu.Unlock()
	return len(s.inc.grids)
}
