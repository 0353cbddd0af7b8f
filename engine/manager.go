package engine

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/callwatch/callwatch/dsl"
)

// ManagerOptions configure a Manager.
type ManagerOptions struct {
	GroupOptions
	// RuleFiles are globs of rule files.
	RuleFiles []string
	// Channels are the configured notifier names rules may route to.
	Channels []string
	// RestoreWindow caps how far back the engine replays evaluations at
	// start to restore for/keep_firing_for state (default 2h; 0 uses the default,
	// negative disables).
	RestoreWindow time.Duration
	// WatchInterval is how often rule files are checked for changes (default 5s).
	WatchInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// AuditReader, when set, restores cooldowns and acknowledgements at start.
	AuditReader AuditReader
	// Limits bound rule expressions (see dsl.Limits).
	Limits dsl.Limits
	// Builtin are groups callwatch adds to the rule files' (DatasourceDown).
	Builtin []*Group
}

// Manager loads rule files, runs their groups and reloads them, all or
// nothing.
type Manager struct {
	opts ManagerOptions

	mu       sync.RWMutex
	groups   []*Group
	cancel   context.CancelFunc
	running  sync.WaitGroup
	runCtx   context.Context
	filesSum [32]byte
	restored bool
}

// NewManager returns a Manager; call Load (or Run) to start.
func NewManager(opts ManagerOptions) *Manager {
	opts.applyDefaults()
	if opts.RestoreWindow == 0 {
		opts.RestoreWindow = 2 * time.Hour
	}
	if opts.WatchInterval <= 0 {
		opts.WatchInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Manager{opts: opts}
}

// Groups returns the running groups, sorted by file and name.
func (m *Manager) Groups() []*Group {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return append([]*Group(nil), m.groups...)
}

// Load loads the rule files and, if every file is valid, replaces the
// running groups; otherwise the running groups stay and the error says why.
// Alert state is kept for rules that did not change.
func (m *Manager) Load(ctx context.Context) error {
	specs, err := LoadFiles(m.opts.RuleFiles, LoadOptions{Schema: m.opts.Schema, Channels: m.opts.Channels, Limits: m.opts.Limits})
	if err != nil {
		m.opts.Metrics.reloaded(false, m.opts.Now())
		return err
	}
	groups := make([]*Group, 0, len(specs))
	for _, s := range specs {
		groups = append(groups, NewGroup(s, m.opts.GroupOptions))
	}
	sort.Slice(groups, func(i, j int) bool {
		if groups[i].File() != groups[j].File() {
			return groups[i].File() < groups[j].File()
		}
		return groups[i].Name() < groups[j].Name()
	})
	groups = append(groups, m.opts.Builtin...)

	m.mu.Lock()
	defer m.mu.Unlock()
	old := map[string]*Group{}
	for _, g := range m.groups {
		old[g.Name()] = g
	}
	for _, g := range groups {
		if o := old[g.Name()]; o != nil && o != g {
			g.copyState(o)
		}
	}
	if !m.restored {
		m.restore(ctx, groups)
		m.restoreFromAudit(ctx, groups)
		m.restored = true
	}
	if m.cancel != nil {
		m.cancel()
		m.running.Wait()
		m.cancel = nil
	}
	m.opts.Metrics.groupsLoaded(groups, m.groups)
	m.groups = groups
	m.filesSum = m.sumFiles()
	m.opts.Metrics.reloaded(true, m.opts.Now())
	if m.runCtx != nil {
		m.startLocked()
	}
	return nil
}

// restore replays the recent evaluations of groups that hold state over
// time (for, keep_firing_for), without notifying, so a restart neither
// re-waits for nor loses a keep-firing window.
func (m *Manager) restore(ctx context.Context, groups []*Group) {
	if m.opts.RestoreWindow < 0 {
		return
	}
	now := m.opts.Now()
	for _, g := range groups {
		var hold time.Duration
		for _, r := range g.spec.Rules {
			hold = max(hold, r.For+r.KeepFiringFor)
		}
		if hold == 0 {
			continue
		}
		window := min(hold+g.interval, m.opts.RestoreWindow)
		last := g.EvalTimestamp(now)
		n := g.replay(ctx, last.Add(-window), last)
		m.opts.Logger.Info("restored rule group state", "group", g.Name(), "evaluations", n, "window", window)
	}
}

// Run evaluates the groups until ctx ends, reloading when rule files change.
// Call Load first.
func (m *Manager) Run(ctx context.Context) {
	m.mu.Lock()
	m.runCtx = ctx
	m.startLocked()
	m.mu.Unlock()
	t := time.NewTicker(m.opts.WatchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			if m.cancel != nil {
				m.cancel()
			}
			m.mu.Unlock()
			m.running.Wait()
			return
		case <-t.C:
			m.mu.RLock()
			changed := m.sumFiles() != m.filesSum
			m.mu.RUnlock()
			if changed {
				if err := m.Load(ctx); err != nil {
					m.opts.Logger.Error("reloading rules failed; the previous rules keep running", "err", err)
					m.mu.Lock()
					m.filesSum = m.sumFiles() // report a broken file once, not every tick
					m.mu.Unlock()
				} else {
					m.opts.Logger.Info("rules reloaded after a rule file changed")
				}
			}
		}
	}
}

func (m *Manager) startLocked() {
	ctx, cancel := context.WithCancel(m.runCtx)
	m.cancel = cancel
	for _, g := range m.groups {
		m.running.Add(1)
		go func() {
			defer m.running.Done()
			g.run(ctx, m.opts.Now)
		}()
	}
}

// sumFiles hashes the names and contents of the files the globs match.
func (m *Manager) sumFiles() [32]byte {
	h := sha256.New()
	var files []string
	for _, g := range m.opts.RuleFiles {
		f, _ := filepath.Glob(g)
		files = append(files, f...)
	}
	sort.Strings(files)
	for _, f := range files {
		h.Write([]byte(f))
		data, _ := os.ReadFile(f)
		h.Write(data)
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	return sum
}
