//go:build ignore

// gen_sample_events writes testdata/sample_events.jsonl, the bundled sample
// that `make run` queries:
//
//	go run testdata/gen_sample_events.go > testdata/sample_events.jsonl
//
// It draws about 2000 call events between 2025-11-24T15:00:00Z and
// 16:10:00Z from a fixed seed, so the file is reproducible. Latencies are
// lognormal (heavy-tailed), about 3% of calls fail, and two incidents are
// scripted on top:
//
//   - acme's latency spikes from 16:05 to 16:10, so at 16:10 the query
//     `max by (tenant_id) (p95(latency_ms[5m])) > 5000` returns acme only;
//   - globex has an error burst (mostly rate_limited) from 16:00 to 16:05.
package main

import (
	"bufio"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"time"

	"github.com/callwatch/callwatch/internal/demo"
)

// event has the columns of the baseline events table, in table order.
type event struct {
	CreatedAt    string  `json:"created_at"`
	TenantID     string  `json:"tenant_id"`
	AppCode      string  `json:"app_code"`
	Model        string  `json:"model"`
	Provider     string  `json:"provider"`
	Status       string  `json:"status"`
	ErrorCode    string  `json:"error_code"`
	LatencyMS    int     `json:"latency_ms"`
	InputTokens  int     `json:"input_tokens"`
	OutputTokens int     `json:"output_tokens"`
	Cost         float64 `json:"cost"`
}

// model is a model's provider, typical latency and price in USD per million tokens.
type model struct {
	name, provider  string
	medianLatencyMS float64
	inPrice         float64
	outPrice        float64
}

var models = []model{
	{"gpt-4o", "openai", 900, 2.5, 10},
	{"gpt-4o-mini", "openai", 450, 0.15, 0.6},
	{"claude-sonnet", "anthropic", 1100, 3, 15},
}

// The names are drawn with probability proportional to their weights.
var (
	tenants    = []demo.Choice[string]{{Value: "acme", Weight: 0.4}, {Value: "globex", Weight: 0.35}, {Value: "initech", Weight: 0.25}}
	apps       = []demo.Choice[string]{{Value: "chat", Weight: 0.5}, {Value: "search", Weight: 0.3}, {Value: "agent", Weight: 0.2}}
	errorCodes = []demo.Choice[string]{{Value: "rate_limited", Weight: 0.55}, {Value: "timeout", Weight: 0.2},
		{Value: "server_error", Weight: 0.15}, {Value: "context_length_exceeded", Weight: 0.1}}
)

const n = 2000

func main() {
	r := rand.New(rand.NewPCG(20251124, 1600))
	start := time.Date(2025, 11, 24, 15, 0, 0, 0, time.UTC)
	end := time.Date(2025, 11, 24, 16, 10, 0, 0, time.UTC)
	globexBurst := [2]time.Time{time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC), time.Date(2025, 11, 24, 16, 5, 0, 0, time.UTC)}
	acmeSpike := [2]time.Time{globexBurst[1], end}

	span := int64(end.Sub(start) / time.Second)
	times := make([]time.Time, n)
	for i := range times {
		times[i] = start.Add(time.Duration(r.Int64N(span)) * time.Second)
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })

	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for _, ts := range times {
		m := models[r.IntN(len(models))]
		ev := event{
			CreatedAt: ts.Format(time.RFC3339),
			TenantID:  demo.Pick(r, tenants),
			AppCode:   demo.Pick(r, apps),
			Model:     m.name,
			Provider:  m.provider,
			Status:    "ok",
		}
		in, outTok := 600.0, 250.0
		latency := m.medianLatencyMS
		if ev.AppCode == "agent" {
			// Agents send long contexts and wait for long answers.
			in, outTok, latency = 2500, 600, latency*1.6
		}
		ev.InputTokens = int(lognormal(r, in, 0.8))
		ev.OutputTokens = int(lognormal(r, outTok, 0.7))
		ev.LatencyMS = int(lognormal(r, latency, 0.45))

		errorRate := 0.03
		if ev.TenantID == "globex" && within(ts, globexBurst) {
			errorRate = 0.45
		}
		if r.Float64() < errorRate {
			ev.Status = "error"
			ev.ErrorCode = demo.Pick(r, errorCodes)
			if ev.TenantID == "globex" && within(ts, globexBurst) && r.Float64() < 0.8 {
				ev.ErrorCode = "rate_limited"
			}
			ev.OutputTokens = 0
			switch ev.ErrorCode {
			case "timeout":
				ev.LatencyMS = 30000
			case "rate_limited", "context_length_exceeded":
				// Rejected before the model ran: fast and free.
				ev.LatencyMS = 20 + r.IntN(120)
				ev.InputTokens = 0
			}
		}
		if ev.TenantID == "acme" && within(ts, acmeSpike) && ev.Status == "ok" {
			// A degraded upstream: most of acme's calls become very slow.
			ev.LatencyMS = int(lognormal(r, 9000, 0.35))
		}
		ev.Cost = math.Round((float64(ev.InputTokens)*m.inPrice+float64(ev.OutputTokens)*m.outPrice)/1e6*1e6) / 1e6
		if err := enc.Encode(ev); err != nil {
			panic(err)
		}
	}
}

// lognormal draws from a lognormal distribution with the given median.
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return math.Max(1, math.Round(median*math.Exp(sigma*r.NormFloat64())))
}

// within reports whether ts is in [from, to).
func within(ts time.Time, span [2]time.Time) bool {
	return !ts.Before(span[0]) && ts.Before(span[1])
}
