// Package demo generates realistic AI/LLM call events with scripted
// incidents, so callwatch can show its whole job without a real platform.
//
// A Generator draws calls of several tenants, apps and models: lognormal
// token counts, a cost from the tokens and each model's price (CNY), heavy
// tailed latencies that depend on the model and the answer's length, a
// daily rhythm of traffic and a few percent of failed calls. On top of
// that a Script of incidents, timed from the generator's start and
// repeated on a loop, makes the rules of rules.d fire and resolve: an error
// burst, a latency spike, a cost surge and a tenant going silent. The
// default rate and error ratio are those of the small platform the
// baseline's thresholds were set for, so that nothing else fires: the
// tests backtest rules.d over a day of normal traffic and over two rounds
// of the script.
//
// Generate is deterministic: each second of traffic is drawn from its own
// random stream, seeded by the generator's seed and the second, so the
// events of a time range do not depend on how it is cut into batches. Run
// writes the traffic in near real time to a Sink, after an optional
// backfill; Inserter is a Sink that writes into a ClickHouse table with the
// INSERT … SELECT form that works from ClickHouse 18.16 to current releases.
package demo
