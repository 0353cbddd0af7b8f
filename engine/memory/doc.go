// Package memory evaluates callwatch leaves over events held in memory.
//
// It powers rule unit tests, `callwatch query --events`, and the differential
// tests that prove it agrees with the ClickHouse backend. Its definitions are
// ClickHouse's: quantiles are quantileExact (sorted values, index floor(φ·n)
// clamped to n−1) and the standard deviation is the population one,
// accumulated with Welford's algorithm as stddevPopStable does.
package memory
