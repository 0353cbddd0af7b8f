// Package proctest holds what the test-server helpers (chtest, amtest,
// promtest) share: free loopback ports and tying a server's life to the
// test binary's.
package proctest

import (
	"fmt"
	"net"
)

// FreePorts returns n distinct TCP ports free on 127.0.0.1 right now.
func FreePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort returns one TCP port free on 127.0.0.1 right now.
func FreePort() (int, error) {
	p, err := FreePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}
