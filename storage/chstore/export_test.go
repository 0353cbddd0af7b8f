package chstore

import "time"

// ServerDatabase is serverDatabase, for the tests in package chstore_test
// (which run the contract suites of internal/storetest).
var ServerDatabase = serverDatabase

// SetClusterWait sets how long a statement ON CLUSTER waits on the server
// for every server, for a test that kills one, and returns the old value.
func SetClusterWait(d time.Duration) time.Duration {
	old := clusterWait
	clusterWait = d
	return old
}
