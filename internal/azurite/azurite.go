// Package azurite starts and stops Azurite, the real Blob Storage emulator,
// on a free loopback port. The emulator command and the tests both use it.
package azurite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// Well-known development account (published by Microsoft; not a secret).
const (
	AccountName = "devstoreaccount1"
	AccountKey  = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// ErrNotInstalled means no azurite-blob executable was found.
var ErrNotInstalled = errors.New("azurite is not installed")

// Server is a running Azurite blob service.
type Server struct {
	cmd  *exec.Cmd
	Port int
	Dir  string // workspace folder (data); removed by Stop when owned
	owns bool
	done chan error
}

// Options tune Start.
type Options struct {
	// Binary is azurite-blob's path; empty means Find().
	Binary string
	// Dir is the workspace; empty means a temporary folder removed on Stop.
	Dir string
	// InMemory keeps data in memory (faster; lost on stop).
	InMemory bool
	// DebugLog, when set, is a file Azurite logs every request to.
	DebugLog string
	// Port, when non-zero, is used instead of a free one.
	Port int
}

// Find returns the azurite-blob executable: $DJDEPLOY_AZURITE, then the
// repository's .tools folder (where make deps installs it), then PATH.
func Find() (string, error) {
	if p := os.Getenv("DJDEPLOY_AZURITE"); p != "" {
		return p, nil
	}
	// Walk up from this source file's folder and from the working directory
	// to find the repo's .tools.
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for dir := d; ; dir = filepath.Dir(dir) {
			p := filepath.Join(dir, ".tools", "node_modules", ".bin", "azurite-blob")
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
			if filepath.Dir(dir) == dir {
				break
			}
		}
	}
	if p, err := exec.LookPath("azurite-blob"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w: run 'make deps' (it installs the pinned azurite into .tools/)", ErrNotInstalled)
}

// FreePort returns a free TCP port on 127.0.0.1.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Start runs Azurite and waits until it accepts connections.
func Start(ctx context.Context, o Options) (*Server, error) {
	bin := o.Binary
	if bin == "" {
		var err error
		if bin, err = Find(); err != nil {
			return nil, err
		}
	}
	// Azurite runs in its workspace folder, so a relative path would break.
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	port := o.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	s := &Server{Port: port, Dir: o.Dir, done: make(chan error, 1)}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "azurite-")
		if err != nil {
			return nil, err
		}
		s.Dir, s.owns = d, true
	} else if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating azurite's folder: %w", err)
	}
	args := []string{"--blobHost", "127.0.0.1", "--blobPort", strconv.Itoa(port),
		"--skipApiVersionCheck", "--loose", "--disableTelemetry"}
	if o.InMemory {
		args = append(args, "--inMemoryPersistence")
	} else {
		args = append(args, "--location", s.Dir)
	}
	if o.DebugLog != "" {
		args = append(args, "--debug", o.DebugLog)
	} else {
		args = append(args, "--silent")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.Create(filepath.Join(s.Dir, "azurite.stdout.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting azurite: %w", err)
	}
	s.cmd = cmd
	go func() { s.done <- cmd.Wait(); close(s.done) }()

	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
		if err == nil {
			c.Close()
			return s, nil
		}
		select {
		case werr := <-s.done:
			out, _ := os.ReadFile(filepath.Join(s.Dir, "azurite.stdout.log"))
			return nil, fmt.Errorf("azurite exited at start (%v): %s", werr, out)
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, fmt.Errorf("azurite did not listen on %s within 30s", s.Addr())
		}
	}
}

// Addr is host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.Port) }

// BlobEndpoint is the account's Blob service URL.
func (s *Server) BlobEndpoint() string {
	return fmt.Sprintf("http://%s/%s", s.Addr(), AccountName)
}

// ConnectionString is the account-key connection string for this instance.
func (s *Server) ConnectionString() string {
	return ConnectionString(s.BlobEndpoint())
}

// ConnectionString builds the dev account's connection string for a blob endpoint.
func ConnectionString(blobEndpoint string) string {
	return fmt.Sprintf("DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s;",
		AccountName, AccountKey, blobEndpoint)
}

// Stop kills Azurite (and its children) and removes an owned workspace.
func (s *Server) Stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
	}
	if s.owns {
		return os.RemoveAll(s.Dir)
	}
	return nil
}

// Kill stops Azurite abruptly, keeping its data folder (fault tests restart
// it on the same Dir and Port).
func (s *Server) Kill() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
}
