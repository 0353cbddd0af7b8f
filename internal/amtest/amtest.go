// Package amtest starts private Prometheus Alertmanagers for tests, and
// queries them with amtool.
//
// An Alertmanager runs Debian's prometheus-alertmanager (0.25) with a
// minimal configuration (one receiver that notifies nobody), its storage in
// a temporary directory, its API on 127.0.0.1 on a free port and clustering
// disabled; it is killed when the test ends. Without the binary the test is
// skipped, or fails when the environment variable CI is "true".
//
//	am := amtest.Start(t)
//	// POST alerts to am.URL + "/api/v2/alerts" ...
//	alerts := am.Query(t)          // amtool alert query -o json
package amtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// InstallHint tells what to do when the binaries are missing.
const InstallHint = "Prometheus Alertmanager is not installed: `make test` installs it " +
	"(apt-get install prometheus-alertmanager, which brings amtool)"

// ErrNotInstalled is returned by StartAlertmanager when no
// prometheus-alertmanager binary is found.
var ErrNotInstalled = errors.New(InstallHint) //nolint:staticcheck // ST1005: the hint is a sentence printed as is

// StartTimeout bounds how long an Alertmanager may take to become ready.
const StartTimeout = 30 * time.Second

// Config is the configuration an Alertmanager starts with: every alert goes
// to a receiver without integrations, so nothing leaves the machine.
const Config = `route:
  receiver: "null"
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: "null"
`

// Alertmanager is a running private Alertmanager.
type Alertmanager struct {
	// URL is its base URL, http://127.0.0.1:PORT.
	URL  string
	Port int
	// Dir holds its configuration, storage and log.
	Dir string

	proc   *proctest.Proc
	amtool string // "" when amtool is not installed
}

// Start starts an Alertmanager for one test and kills it when the test
// ends. When it is not installed it skips the test, or fails it when CI is
// "true".
func Start(t testing.TB) *Alertmanager {
	t.Helper()
	return proctest.ForTest(t, ErrNotInstalled, StartAlertmanager)
}

// StartAlertmanager starts an Alertmanager whose files live in dir. The
// caller must Close it.
func StartAlertmanager(dir string) (*Alertmanager, error) {
	bin, err := proctest.Binary(ErrNotInstalled, "prometheus-alertmanager", "alertmanager")
	if err != nil {
		return nil, err
	}
	amtool, _ := proctest.Binary(ErrNotInstalled, "amtool")
	return proctest.Retry(func() (*Alertmanager, error) { return start(bin, amtool, dir) })
}

func start(bin, amtool, base string) (*Alertmanager, error) {
	port, err := proctest.FreePort()
	if err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	// no clustering: no gossip port, no peers
	return startWith(bin, amtool, base, Config, port, []string{"--cluster.listen-address="})
}

// ClusterConfig is the configuration of StartCluster's Alertmanagers: every
// alert goes to one webhook receiver (%s is its URL).
const ClusterConfig = `route:
  receiver: hook
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`

// StartCluster starts n Alertmanagers gossiping with each other (an HA
// cluster on loopback), all notifying the webhook at hookURL, and kills them
// when the test ends. The cluster deduplicates: one notification per group,
// whichever members receive the alerts.
func StartCluster(t testing.TB, n int, hookURL string) []*Alertmanager {
	t.Helper()
	bin, err := proctest.Binary(ErrNotInstalled, "prometheus-alertmanager", "alertmanager")
	if err != nil {
		proctest.SkipOrFatal(t, err, ErrNotInstalled)
	}
	amtool, _ := proctest.Binary(ErrNotInstalled, "amtool")
	ports, err := proctest.FreePorts(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	var ams []*Alertmanager
	for i := range n {
		cluster := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[n+i]))
		args := []string{"--cluster.listen-address=" + cluster, "--cluster.advertise-address=" + cluster,
			"--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=1s", "--cluster.peer-timeout=2s"}
		for j := range n {
			if j != i {
				args = append(args, "--cluster.peer="+net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[n+j])))
			}
		}
		am, err := startWith(bin, amtool, t.TempDir(), fmt.Sprintf(ClusterConfig, hookURL), ports[i], args)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(am.Close)
		ams = append(ams, am)
	}
	return ams
}

func startWith(bin, amtool, base, configText string, port int, extra []string) (*Alertmanager, error) {
	dir, config, err := proctest.ConfigDir(base, "alertmanager-", "alertmanager.yml", configText)
	if err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	logFile := filepath.Join(dir, "alertmanager.log")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	proc, err := proctest.Start(dir, logFile, bin, append([]string{
		"--config.file=" + config,
		"--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=info",
	}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("start alertmanager: %w", err)
	}
	am := &Alertmanager{URL: "http://" + addr, Port: port, Dir: dir, proc: proc, amtool: amtool}
	if err := proc.WaitReady(StartTimeout, proctest.HTTPReady(am.URL+"/-/ready")); err != nil {
		am.Close()
		return nil, fmt.Errorf("start alertmanager (%s): %w\n%s", bin, err, proctest.LogTail(logFile))
	}
	return am, nil
}

// Close kills the Alertmanager. It is safe to call more than once.
func (am *Alertmanager) Close() {
	// Its state is thrown away, so there is nothing to shut down gracefully.
	_ = am.proc.Kill()
}

// Alert is an alert as `amtool alert query -o json` prints it (API v2
// GettableAlert).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Status       struct {
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
	Receivers []struct {
		Name string `json:"name"`
	} `json:"receivers"`
}

// Amtool runs amtool against this Alertmanager with args and returns its
// standard output; it fails the test when amtool fails or is not installed.
func (am *Alertmanager) Amtool(t testing.TB, args ...string) []byte {
	t.Helper()
	if am.amtool == "" {
		t.Fatal("amtool not found: " + InstallHint)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{"--alertmanager.url=" + am.URL}, args...)
	cmd := exec.CommandContext(ctx, am.amtool, full...)
	// amtool reads a config file from $HOME; an empty HOME keeps the
	// developer's own settings out of the test.
	cmd.Env = append(os.Environ(), "HOME="+am.Dir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("amtool %s: %v: %s", strings.Join(full, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes()
}

// Query returns the alerts `amtool alert query -o json` lists (active ones,
// by amtool's defaults), with extra arguments such as matchers
// ("alertname=TenantCost") or flags ("--silenced").
func (am *Alertmanager) Query(t testing.TB, args ...string) []Alert {
	t.Helper()
	out := am.Amtool(t, append([]string{"alert", "query", "-o", "json"}, args...)...)
	var alerts []Alert
	if err := json.Unmarshal(out, &alerts); err != nil {
		t.Fatalf("amtool alert query: decode %q: %v", out, err)
	}
	return alerts
}
