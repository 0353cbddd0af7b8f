package demo

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/callwatch/callwatch/engine/memory"
)

// Event is one generated model call, with the columns of the baseline
// events table (dsl.DefaultSchema).
type Event struct {
	Time         time.Time
	TenantID     string
	AppCode      string
	Model        string
	Provider     string
	Status       string // "ok" or "error"
	ErrorCode    string // empty when Status is "ok"
	LatencyMs    uint32
	InputTokens  uint32
	OutputTokens uint32
	// Cost is in CNY.
	Cost float64
}

// Memory returns the event as the memory evaluator holds it, with its
// labels in dsl.DefaultSchema's order.
func (e Event) Memory() memory.Event {
	return memory.Event{
		Time:   e.Time,
		Labels: []string{e.TenantID, e.AppCode, e.Model, e.Provider, e.Status, e.ErrorCode},
		Nums: map[string]float64{
			"latency_ms":    float64(e.LatencyMs),
			"input_tokens":  float64(e.InputTokens),
			"output_tokens": float64(e.OutputTokens),
			"cost":          e.Cost,
		},
	}
}

// Options configure a Generator.
type Options struct {
	// Seed selects the random streams; the same seed gives the same events.
	Seed uint64
	// Rate is the mean number of calls per second over a day (default
	// DefaultRate); the daily rhythm makes it lower at night and higher at
	// office hours.
	Rate float64
	// ErrorRatio is the share of failed calls outside incidents (default
	// DefaultErrorRatio).
	ErrorRatio float64
	// Start is when the generator starts: the script's incidents are timed
	// from it. The zero value means the time New is called.
	Start time.Time
	// Script are the incidents; nil means DefaultScript(), and an empty
	// Script means none.
	Script *Script
	// Location is where the daily rhythm's hours are counted (default
	// UTC+8, where the platform's users are).
	Location *time.Location
}

// The defaults model the small platform the baseline's thresholds in
// rules.d were set for, so that its normal traffic stays under every one of
// them and only the scripted incidents fire: at 0.3 calls per second the
// chat app peaks at about 600 calls an hour, 800 with the retries of two
// rounds of incidents (ChatCallVolume: 1000), the
// biggest tenant spends about ¥65 and uses about 14M tokens a day
// (TenantCost: ¥100, TenantTokenUsage: 20M), the smallest still calls
// several times in 10 minutes at night (TenantSilent), and 0.02% of failed
// calls keep the platform under 10 errors in 5 minutes (ErrorBurst) and a
// tenant's 20 to 60 calls in 5 minutes under 5% failed (TenantErrorRatio:
// two failures among 40 calls are 5%, so at 0.05% it already trips by
// chance about once in ten days, at 0.2% a few times a day).
// A higher rate makes the volume and daily rules fire on normal traffic.
const (
	DefaultRate       = 0.3
	DefaultErrorRatio = 0.0002
)

// Generator draws call events. It is safe for concurrent use: it holds no
// mutable state.
type Generator struct {
	opts   Options
	script Script
	rhythm [24]float64
}

// New returns a Generator.
func New(opts Options) *Generator {
	if opts.Rate <= 0 {
		opts.Rate = DefaultRate
	}
	if opts.ErrorRatio <= 0 {
		opts.ErrorRatio = DefaultErrorRatio
	}
	if opts.Start.IsZero() {
		opts.Start = time.Now()
	}
	if opts.Location == nil {
		opts.Location = time.FixedZone("UTC+8", 8*3600)
	}
	script := DefaultScript()
	if opts.Script != nil {
		script = *opts.Script
	}
	g := &Generator{opts: opts, script: script}
	// Normalize the rhythm so that Rate is the mean over a day.
	sum := 0.0
	for _, v := range hourly {
		sum += v
	}
	for i, v := range hourly {
		g.rhythm[i] = v * 24 / sum
	}
	return g
}

// Start returns the time the script's incidents are counted from.
func (g *Generator) Start() time.Time { return g.opts.Start }

// Script returns the generator's incidents.
func (g *Generator) Script() Script { return g.script }

// Generate returns the events whose time is in [from, to), sorted by time.
// The result depends only on the options and the range: the events of
// [a, c) are those of [a, b) followed by those of [b, c).
func (g *Generator) Generate(from, to time.Time) []Event {
	var out []Event
	end := to.Unix() // the seconds that start before to
	if to.Nanosecond() > 0 {
		end++
	}
	for sec := from.Unix(); sec < end; sec++ {
		for _, ev := range g.second(sec) {
			if !ev.Time.Before(from) && ev.Time.Before(to) {
				out = append(out, ev)
			}
		}
	}
	return out
}

// Rate returns the expected calls per second at t, without incidents.
func (g *Generator) Rate(t time.Time) float64 { return g.opts.Rate * g.rhythmAt(t) }

// rhythmAt interpolates the hourly rhythm linearly between the middles of
// the hours, so the rate has no steps.
func (g *Generator) rhythmAt(t time.Time) float64 {
	lt := t.In(g.opts.Location)
	h := float64(lt.Hour()) + float64(lt.Minute())/60 + float64(lt.Second())/3600 - 0.5
	if h < 0 {
		h += 24
	}
	i := int(h)
	f := h - float64(i)
	return g.rhythm[i%24]*(1-f) + g.rhythm[(i+1)%24]*f
}

// second draws the events of one second from the second's own stream.
func (g *Generator) second(sec int64) []Event {
	r := rand.New(rand.NewPCG(splitmix(g.opts.Seed), splitmix(uint64(sec)^0x9e3779b97f4a7c15)))
	t := time.Unix(sec, 0).UTC()
	active := g.script.activeAt(g.opts.Start, t)
	base := g.Rate(t)
	var out []Event
	for _, tn := range tenants {
		eff := effects(active, tn.name)
		n := poisson(r, base*tn.share*eff.volume)
		for range n {
			out = append(out, g.call(r, t, tn.name, eff))
		}
		for range poisson(r, eff.runaway) {
			out = append(out, runawayCall(r, t, tn.name))
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// call draws one call of tenant in the second starting at t.
func (g *Generator) call(r *rand.Rand, t time.Time, tenant string, eff effect) Event {
	app := Pick(r, apps)
	m := Pick(r, app.models)
	ev := Event{
		Time:     t.Add(time.Duration(r.IntN(1000)) * time.Millisecond),
		TenantID: tenant, AppCode: app.name, Model: m.name, Provider: m.provider, Status: "ok",
	}
	in := math.Min(lognormal(r, app.inputMedian, 0.7), 128000)
	// The apps ask for at most maxOutput tokens.
	out := math.Min(lognormal(r, app.outputMedian, 0.6), maxOutput)
	// The time to the first token varies, the generation's speed hardly;
	// the variation is bounded, so that outliers come from incidents.
	latency := m.ttftMs*boundedLognormal(r, 0.3) + out*m.msPerToken*boundedLognormal(r, 0.1)
	errRatio := g.opts.ErrorRatio
	codes := errorCodes
	if eff.slow > 0 && r.Float64() < eff.slow {
		// A degraded upstream: the call waits several seconds.
		latency = lognormal(r, 7500, 0.3)
	}
	if eff.errorRatio > 0 {
		errRatio, codes = eff.errorRatio, burstCodes
	}
	if r.Float64() < errRatio {
		ev.Status, ev.ErrorCode = "error", Pick(r, codes)
		switch ev.ErrorCode {
		case "rate_limited":
			// Rejected at the gateway: fast, nothing reaches the model.
			in, out, latency = 0, 0, 20+float64(r.IntN(180))
		case "timeout":
			// The client gives up after 30 s; the provider bills nothing.
			in, out, latency = 0, 0, 30000
		case "upstream_5xx":
			in, out, latency = 0, 0, m.ttftMs*boundedLognormal(r, 0.3)
		case "content_filter":
			// The prompt was read (and billed), the answer withheld.
			out, latency = 0, lognormal(r, m.ttftMs, 0.3)
		}
	}
	ev.InputTokens, ev.OutputTokens = uint32(math.Round(in)), uint32(math.Round(out))
	ev.LatencyMs = uint32(math.Max(1, math.Min(math.Round(latency), 30000)))
	ev.Cost = cost(m, ev.InputTokens, ev.OutputTokens)
	return ev
}

// maxOutput is the apps' max_tokens.
const maxOutput = 600

// cost is the price of a call in CNY, rounded to 1e-6.
func cost(m model, in, out uint32) float64 {
	return math.Round((float64(in)*m.inPrice+float64(out)*m.outPrice)/1e6*1e6) / 1e6
}

// runawayCall is one call of a cost surge's runaway job: an agent loop
// that sends its whole context, near the model's limit, to the most
// expensive model again and again, for a short tool call in return.
func runawayCall(r *rand.Rand, t time.Time, tenant string) Event {
	m := claudeSonnet
	in := uint32(math.Round(math.Min(lognormal(r, 110000, 0.1), 128000)))
	out := uint32(math.Round(lognormal(r, 60, 0.3)))
	latency := m.ttftMs*boundedLognormal(r, 0.3) + float64(out)*m.msPerToken
	return Event{
		Time:     t.Add(time.Duration(r.IntN(1000)) * time.Millisecond),
		TenantID: tenant, AppCode: "agent", Model: m.name, Provider: m.provider, Status: "ok",
		LatencyMs: uint32(math.Round(latency)), InputTokens: in, OutputTokens: out, Cost: cost(m, in, out),
	}
}

// tenant is a customer of the platform and its share of the traffic.
type tenant struct {
	name  string
	share float64
}

// tenants are the demo's tenants, biggest first.
var tenants = []tenant{{"acme", 0.30}, {"globex", 0.25}, {"initech", 0.20}, {"umbrella", 0.15}, {"hooli", 0.10}}

// Tenants returns the tenants the generator draws, biggest first.
func Tenants() []string {
	out := make([]string, len(tenants))
	for i, t := range tenants {
		out[i] = t.name
	}
	return out
}

// model is a model, its provider, how fast it answers and its price in
// CNY per million input and output tokens.
type model struct {
	name, provider    string
	ttftMs            float64 // median time to the first token
	msPerToken        float64 // per output token
	inPrice, outPrice float64
}

var (
	gpt4o        = model{"gpt-4o", "openai", 550, 2.4, 18, 72}
	gpt4oMini    = model{"gpt-4o-mini", "openai", 320, 1.2, 1.1, 4.3}
	claudeSonnet = model{"claude-sonnet", "anthropic", 700, 2.8, 21.6, 108}
	qwenMax      = model{"qwen-max", "aliyun", 480, 2.2, 2.4, 9.6}
)

// app is a product of the platform: its prompts and answers (median
// tokens) and the models it calls.
type app struct {
	name                      string
	inputMedian, outputMedian float64
	models                    []Choice[model]
}

// apps call mostly the cheap models, as a small platform watching its
// spend does; the expensive ones are a few percent of the calls.
var apps = []Choice[app]{
	{app{"chat", 600, 200, []Choice[model]{{gpt4o, 0.1}, {gpt4oMini, 0.55}, {claudeSonnet, 0.05}, {qwenMax, 0.3}}}, 0.35},
	{app{"search", 1000, 120, []Choice[model]{{gpt4oMini, 0.6}, {qwenMax, 0.4}}}, 0.35},
	{app{"agent", 2000, 300, []Choice[model]{{gpt4o, 0.15}, {gpt4oMini, 0.3}, {claudeSonnet, 0.05}, {qwenMax, 0.5}}}, 0.15},
	{app{"summarize", 2500, 180, []Choice[model]{{gpt4oMini, 0.7}, {qwenMax, 0.3}}}, 0.15},
}

var (
	// errorCodes are the failures of normal traffic. Timeouts (30 s) are
	// not among them: one among a small tenant's few calls would be its
	// p95, and TenantP95Latency would fire.
	errorCodes = []Choice[string]{{"rate_limited", 0.45}, {"upstream_5xx", 0.4}, {"content_filter", 0.15}}
	// burstCodes are the failures of an error burst: a provider in trouble.
	// No timeouts, so a burst does not move the tenant's latency too.
	burstCodes = []Choice[string]{{"upstream_5xx", 0.7}, {"rate_limited", 0.3}}
)

// hourly is the relative traffic of each local hour: quiet at night, peaks
// in the late morning and the afternoon. New normalizes it to a mean of 1.
var hourly = [24]float64{
	0.55, 0.45, 0.4, 0.38, 0.4, 0.5, 0.65, 0.85, 1.1, 1.3, 1.4, 1.35,
	1.1, 1.2, 1.4, 1.45, 1.4, 1.3, 1.15, 1.1, 1.05, 0.95, 0.8, 0.65,
}

// Choice is a value and its weight, for Pick.
type Choice[T any] struct {
	Value  T
	Weight float64
}

// Pick returns one of the values with probability proportional to its
// weight, drawing one number from r. The generator draws with it, and so
// does testdata/gen_sample_events.go, the bundled sample's script.
func Pick[T any](r *rand.Rand, cs []Choice[T]) T {
	total := 0.0
	for _, c := range cs {
		total += c.Weight
	}
	x := r.Float64() * total
	for _, c := range cs {
		if x < c.Weight {
			return c.Value
		}
		x -= c.Weight
	}
	return cs[len(cs)-1].Value
}

// lognormal draws from the lognormal distribution with the given median.
func lognormal(r *rand.Rand, median, sigma float64) float64 {
	return median * math.Exp(sigma*r.NormFloat64())
}

// boundedLognormal draws a factor around 1 from the lognormal distribution
// with sigma, truncated at three sigmas.
func boundedLognormal(r *rand.Rand, sigma float64) float64 {
	return math.Exp(sigma * math.Max(-3, math.Min(3, r.NormFloat64())))
}

// poisson draws a Poisson count with mean lambda: Knuth's method for small
// means, a rounded normal for large ones.
func poisson(r *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	if lambda > 200 {
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	limit, k, p := math.Exp(-lambda), 0, r.Float64()
	for p > limit {
		k++
		p *= r.Float64()
	}
	return k
}

// splitmix scrambles a seed (SplitMix64's finalizer), so that neighbouring
// seconds get unrelated streams.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
