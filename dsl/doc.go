// Package dsl parses, checks and plans callwatch expressions.
//
// The language is PromQL's grammar (parsed by the Prometheus parser) with one
// deliberate difference: raw call events have no series of their own, so a
// range function such as p95(latency_ms[5m]) pools every event matching its
// selector inside the window (t−w, t], grouped by the by/without labels of the
// nearest enclosing aggregation, or into a single group when there is none.
//
// Parse turns an expression into an Expr: a list of Leaves (the pooled range
// functions, which a backend computes — in ClickHouse or in memory) and a
// rewritten PromQL query in which every leaf is replaced by a synthetic
// instant selector, so everything above the leaves keeps PromQL's exact
// semantics. The package is a leaf: it does no I/O and knows nothing about the
// backends.
//
// It also owns the notations of time the language shares with the files and
// flags around it: ParseTime (RFC 3339 or unix seconds), ParseDuration and
// the YAML Duration (Prometheus' 30s, 5m, 1h, 1d), so that the configuration,
// rule files, rule tests, the HTTP API and the commands read them alike.
package dsl
