package github

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

func TestParseRoutes(t *testing.T) {
	const routes = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n" +
		"eth0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
		"eth0\t00000000\t010011AC\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	got, err := parseRoutes(strings.NewReader(routes))
	if err != nil || got != "172.17.0.1" {
		t.Errorf("gateway = %q, %v; want 172.17.0.1", got, err)
	}
	if _, err := parseRoutes(strings.NewReader(routes[:strings.LastIndex(routes, "eth0")])); err == nil {
		t.Error("no default route accepted")
	}
}

func freePort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

func TestForwardRelaysLoopbackToTarget(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "host="+r.Host)
	}))
	defer srv.Close()
	port := freePort(t)
	stop, err := StartForwards(context.Background(), []string{port + "=" + srv.Listener.Addr().String()}, "unused")
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://127.0.0.1:" + port + "/x")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	// The Host header is the loopback one the client used: the emulator
	// tells slots apart by it.
	if string(b) != "host=127.0.0.1:"+port {
		t.Errorf("relayed response %q", b)
	}
}

func TestForwardRejectsBadSpec(t *testing.T) {
	if _, err := StartForwards(context.Background(), []string{"http"}, "127.0.0.1"); err == nil {
		t.Error("non-numeric port accepted")
	}
}
