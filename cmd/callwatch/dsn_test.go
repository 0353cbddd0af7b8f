package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/callwatch/callwatch/internal/proctest"
)

// TestCommandsHideTheDSNsSecrets runs the commands that connect to
// ClickHouse with a DSN carrying a password (in the user info and as the
// password parameter) and proxy credentials, against a port nothing listens
// on, against the test server (which refuses the password) and with a DSN
// that does not parse: the errors they print show none of it.
func TestCommandsHideTheDSNsSecrets(t *testing.T) {
	s := server.Get(t)
	refused := proctest.FreeAddr(t)
	const (
		userPass  = "dsnUSERPASS-7f6e5d4c"
		paramPass = "dsnPARAMPASS/7f6e&5d4c"
		proxyPass = "dsnPROXYPASS-7f6e5d4c"
	)
	secrets := []string{userPass, paramPass, proxyPass}
	secretParams := "password=" + url.QueryEscape(paramPass) + "&http_proxy=" + url.QueryEscape("http://proxy:"+proxyPass+"@127.0.0.1:3128")
	for _, dsn := range []struct{ name, dsn string }{
		{"a refused connection", "clickhouse://default:" + userPass + "@" + refused + "/default?dial_timeout=1s&" + secretParams},
		{"a refused password", "clickhouse://" + s.Addr + "/default?username=default&" + secretParams},
		{"a DSN that does not parse", "clickhouse://default:" + userPass + "@" + s.Addr + "/default?" + secretParams + "&dial_timeout=%zz"},
		{"a DSN of another scheme", "http://default:" + userPass + "@" + s.Addr + "/default?" + secretParams},
		{"a DSN clickhouse-go refuses", "clickhouse://default:" + userPass + "@" + s.Addr + "/default?" + secretParams + "&dial_timeout=" + url.QueryEscape(paramPass)},
	} {
		cfgFile := writeConfig(t, t.TempDir(), fmt.Sprintf("clickhouse:\n  dsn: %q\nrule_files: []\n", dsn.dsn))
		for _, args := range [][]string{
			{"serve", "--config.file", cfgFile, "--web.listen-address", "127.0.0.1:0"},
			{"query", "--config.file", cfgFile, "count_over_time(events[5m])"},
			{"demo", "--config.file", cfgFile, "--duration", "1s", "--backfill", "0s"},
			{"backtest", "--config.file", cfgFile, "--from", "2025-01-01T00:00:00Z", "--to", "2025-01-01T00:01:00Z"},
		} {
			t.Run(dsn.name+", "+args[0], func(t *testing.T) {
				var stdout, stderr syncBuffer
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				if code := run(ctx, args, &stdout, &stderr); code == 0 {
					t.Fatalf("%s succeeded; the test needs a failure:\n%s", args[0], stderr.String())
				}
				out := stdout.String() + stderr.String()
				if leaks := leaksIn(out, secrets); len(leaks) > 0 {
					t.Errorf("the output shows %q:\n%s", leaks, out)
				}
			})
		}
	}
}
