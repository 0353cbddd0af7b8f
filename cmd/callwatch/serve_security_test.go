package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Listening beyond loopback without an admin token is refused before
// anything is opened, unless --web.allow-unauthenticated-writes says so;
// then it is warned about. These runs stop at the store, which the
// cancelled context keeps from connecting.
func TestServeRefusesUnauthenticatedWritesBeyondLoopback(t *testing.T) {
	const refusal = "is reachable from other hosts and web.admin_token is not set (or blank)"
	const warning = "listening beyond loopback without an admin token"
	t.Setenv("CALLWATCH_TEST_TOKEN", "s3cret")
	t.Setenv("CALLWATCH_TEST_BLANK_TOKEN", "")
	for _, tc := range []struct {
		name, token string // token is the admin_token line of the configuration, if any
		args        []string
		refused     bool
		warned      bool
	}{
		{"every interface without a token is refused", "", []string{"--web.listen-address", ":9466"}, true, false},
		{"0.0.0.0 without a token is refused", "", []string{"--web.listen-address", "0.0.0.0:0"}, true, false},
		{"a host name without a token is refused", "", []string{"--web.listen-address", "callwatch.internal:0"}, true, false},
		{"an admin token from an empty environment variable is refused like none", "${CALLWATCH_TEST_BLANK_TOKEN}",
			[]string{"--web.listen-address", "0.0.0.0:0"}, true, false},
		{"a blank admin token is refused like none", `"  "`, []string{"--web.listen-address", "0.0.0.0:0"}, true, false},
		{"0.0.0.0 with --web.allow-unauthenticated-writes starts, warned", "",
			[]string{"--web.listen-address", "0.0.0.0:0", "--web.allow-unauthenticated-writes"}, false, true},
		{"0.0.0.0 with an admin token starts", "${CALLWATCH_TEST_TOKEN}", []string{"--web.listen-address", "0.0.0.0:0"}, false, false},
		{"loopback without a token starts", "", []string{"--web.listen-address", "127.0.0.1:0"}, false, false},
		{"localhost without a token starts", "", []string{"--web.listen-address", "localhost:0"}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := "clickhouse:\n  dsn: clickhouse://127.0.0.1:1/default\n"
			if tc.token != "" {
				cfg += "web:\n  admin_token: " + tc.token + "\n"
			}
			file := filepath.Join(dir, "callwatch.yaml")
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			out, errOut := &syncBuffer{}, &syncBuffer{}
			code := run(ctx, append([]string{"serve", "--config.file", file}, tc.args...), out, errOut)
			stderr := errOut.String()
			if tc.refused {
				if code != 2 || !strings.Contains(stderr, refusal) || !strings.Contains(stderr, "--web.allow-unauthenticated-writes") ||
					!strings.Contains(stderr, "web.admin_token") {
					t.Fatalf("exit %d, want 2 and the refusal:\n%s", code, stderr)
				}
				return
			}
			if code == 2 || strings.Contains(stderr, refusal) {
				t.Fatalf("refused (exit %d):\n%s", code, stderr)
			}
			if strings.Contains(stderr, warning) != tc.warned {
				t.Fatalf("warned %v, want %v:\n%s", !tc.warned, tc.warned, stderr)
			}
		})
	}
}
