package config

import (
	"errors"
	"testing"
)

// FuzzParse: any bytes give a configuration or an error, never a panic,
// and an accepted configuration validates.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "clickhouse:\n  dsn: clickhouse://a:b@h:9000/d\n", "schema:\n  time: t\n  labels: [a]\n  fields: {x: [y, z]}\n",
		"notifiers:\n  - {name: n, type: wecom, url: \"https://x/y?key=k\"}\ndefault_notify: [n]\n", "clickhouse: [", "limits: {max_window: 1d}\n",
		"web:\n  admin_token: ${NOPE_NOT_SET}\n", "exporter:\n  labels: [tenant_id]\n  label_limit: 3\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data)
		if err != nil {
			return
		}
		if verr := c.Validate(); verr != nil && !errors.Is(verr, verr) {
			t.Fatalf("accepted config does not validate: %v", verr)
		}
	})
}
