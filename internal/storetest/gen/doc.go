// Package gen generates, from a seed, random events of the default schema
// and random expressions over every feature of the language, for the
// differential suites of internal/storetest and the compiler's fuzzer in
// engine/clickhouse. It imports neither backend, so both can use it.
package gen
