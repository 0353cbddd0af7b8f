package chtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

var server = NewShared()

func TestMain(m *testing.M) { os.Exit(server.Run(m)) }

func TestServerStoresAndReturnsRows(t *testing.T) {
	s := server.Get(t)
	db := s.NewDatabase(t)
	s.Exec(t, "CREATE TABLE "+db+".calls (created_at DateTime, tenant_id String, latency_ms UInt32, cost Float64) "+
		"ENGINE = MergeTree PARTITION BY toYYYYMMDD(created_at) ORDER BY created_at")
	ts := time.Date(2025, 11, 24, 16, 0, 0, 0, time.UTC)
	s.InsertJSONEachRow(t, db, "calls", []map[string]any{
		{"created_at": ts, "tenant_id": `it's "quoted" \ here`, "latency_ms": 120, "cost": 0.25},
		{"created_at": ts.Unix() + 1, "tenant_id": "<beta>", "latency_ms": 80},
	})
	s.Exec(t, "INSERT INTO "+db+".calls SELECT toDateTime(?), ?, ?, ?", ts.Unix()+2, "gamma", 7, 1.5)

	conn := s.Conn(t, db)
	rows, err := conn.Query(context.Background(), "SELECT created_at, tenant_id, latency_ms, cost FROM calls ORDER BY created_at")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		at      time.Time
		tenant  string
		latency uint32
		cost    float64
	}
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.at, &r.tenant, &r.latency, &r.cost); err != nil {
			t.Fatal(err)
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	want := []row{
		{ts, `it's "quoted" \ here`, 120, 0.25},
		{ts.Add(time.Second), "<beta>", 80, 0},
		{ts.Add(2 * time.Second), "gamma", 7, 1.5},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d rows %v, want %v", len(got), got, want)
	}
	for i := range want {
		if !got[i].at.Equal(want[i].at) || got[i].tenant != want[i].tenant || got[i].latency != want[i].latency || got[i].cost != want[i].cost {
			t.Errorf("row %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestServerRunsInUTC(t *testing.T) {
	s := server.Get(t)
	var tz string
	if err := s.Conn(t, "default").QueryRow(context.Background(), "SELECT timezone()").Scan(&tz); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(tz, "UTC") {
		t.Fatalf("server timezone = %q, want UTC", tz)
	}
}

func TestDSNNamesTheDatabase(t *testing.T) {
	s := server.Get(t)
	if got, want := s.DSN("x"), "clickhouse://"+s.Addr+"/x"; got != want {
		t.Fatalf("DSN = %q, want %q", got, want)
	}
}

func TestStartGivesEachTestItsOwnServer(t *testing.T) {
	s := Start(t)
	if s.Addr == server.Get(t).Addr {
		t.Fatalf("private server shares the address %s", s.Addr)
	}
	var one uint8
	if err := s.Conn(t, "default").QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 = %d, %v", one, err)
	}
}

func TestClusterDistributesReadsOverItsShards(t *testing.T) {
	c := StartCluster(t, ClusterOptions{Shards: 2})
	if len(c.Shards) != 2 || len(c.Servers()) != 2 || c.Shards[0][0].Addr == c.Shards[1][0].Addr {
		t.Fatalf("cluster of %d shards, servers %v", len(c.Shards), c.Servers())
	}
	db := c.NewDatabase(t)
	c.Exec(t, "CREATE TABLE "+db+".local (n UInt32) ENGINE = MergeTree ORDER BY n")
	c.Exec(t, "CREATE TABLE "+db+".all AS "+db+".local ENGINE = Distributed("+c.Name+", "+db+", local, rand())")
	for i, s := range c.Servers() {
		s.Exec(t, "INSERT INTO "+db+".local SELECT number + ? FROM system.numbers LIMIT 10", 100*i)
	}
	for _, s := range c.Servers() {
		var n, shard uint64
		if err := s.Conn(t, db).QueryRow(context.Background(), "SELECT count(), sum(n >= 100) FROM all").Scan(&n, &shard); err != nil {
			t.Fatal(err)
		}
		if n != 20 || shard != 10 {
			t.Errorf("through %s: %d rows, %d from the second shard; want 20 and 10", s.Addr, n, shard)
		}
		var macro string
		if err := s.Conn(t, db).QueryRow(context.Background(), "SELECT substitution FROM system.macros WHERE macro = 'shard'").Scan(&macro); err != nil {
			t.Fatal(err)
		}
		if want := map[string]string{c.Shards[0][0].Addr: "1", c.Shards[1][0].Addr: "2"}[s.Addr]; macro != want {
			t.Errorf("{shard} on %s = %q, want %q", s.Addr, macro, want)
		}
	}
}
