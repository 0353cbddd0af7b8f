// Package web serves callwatch's HTTP API in Prometheus' shapes
// (/api/v1/rules, /api/v1/alerts, /api/v1/query), the per-rule evaluation
// log, the lifecycle endpoints (/-/healthy, /-/ready, /-/reload) and
// /metrics. It reads the engine through the small interfaces it declares.
//
// Every request that changes state (any method but GET, HEAD and OPTIONS)
// is refused when a browser makes it for another origin, and needs the
// admin token when one is configured; see Options.AdminToken.
package web
