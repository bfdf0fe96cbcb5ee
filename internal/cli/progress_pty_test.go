package cli_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/creack/pty"
	"github.com/djdeploy/djdeploy/internal/e2e"
)

// barRE is a drawn bar of the upload: "files  56% |█████     | (141/249)".
var barRE = regexp.MustCompile(`files +\d+% \|[█ ]+\| \(\d+/\d+\)`)

// TestProgressOnTerminal runs the built binary with stderr on a real
// pseudo-terminal: a build draws a spinner, an upload a bar with its
// percentage, both redrawn in place with carriage returns; with stderr a
// pipe (a CI log) the same commands print plain lines only.
func TestProgressOnTerminal(t *testing.T) {
	py := e2e.Require(t, "progress under a pseudo-terminal")
	bin := e2e.Binary(t)
	emu := e2e.Emulator(t, py)
	base := e2e.Env(emu, py)
	var env []string
	for k, v := range base {
		env = append(env, k+"="+v)
	}
	env = append(env, "PATH="+os.Getenv("PATH"), "HOME="+t.TempDir(), "TERM=xterm")
	proj := e2e.Project(t, "ptyapp")

	// run runs the binary with stderr on a terminal (or a pipe) and
	// returns what stderr received.
	run := func(t *testing.T, onTerminal bool, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var stdout, errPipe bytes.Buffer
		cmd.Stdout = &stdout
		if !onTerminal {
			cmd.Stderr = &errPipe
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v: %v\n%s", args, err, errPipe.String())
			}
			return errPipe.String()
		}
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Fatalf("opening a pseudo-terminal: %v", err)
		}
		defer ptmx.Close()
		if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 40, Cols: 120}); err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = tty
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		tty.Close() // the child holds its own copy
		var screen bytes.Buffer
		copied := make(chan struct{})
		go func() {
			// ends with EIO once the child closed the terminal's last copy
			_, _ = io.Copy(&screen, ptmx)
			close(copied)
		}()
		err = cmd.Wait()
		<-copied
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, screen.String())
		}
		return screen.String()
	}

	out := filepath.Join(t.TempDir(), "out")
	t.Run("build draws a spinner", func(t *testing.T) {
		screen := run(t, true, "build", "--project", proj, "--out", out)
		if !strings.Contains(screen, "\r") || !strings.Contains(screen, "building "+proj) {
			t.Fatalf("no spinner for the build on the terminal:\n%q", screen)
		}
		logged := run(t, false, "build", "--project", proj, "--out", out)
		if strings.Contains(logged, "\r") || !strings.Contains(logged, "collecting static files") {
			t.Fatalf("a log got terminal drawing, or lost its lines:\n%q", logged)
		}
	})
	t.Run("static sync draws a bar", func(t *testing.T) {
		screen := run(t, true, "static", "sync", "--source", filepath.Join(out, "static"))
		if !strings.Contains(screen, "\r") || !barRE.MatchString(screen) {
			t.Fatalf("no upload bar on the terminal:\n%q", screen)
		}
		// a second sync, into a fresh prefix so that it uploads again
		logged := run(t, false, "static", "sync", "--source", filepath.Join(out, "static"), "--static-prefix", "again/")
		if strings.Contains(logged, "\r") || !strings.Contains(logged, "files:") {
			t.Fatalf("a log got terminal drawing, or no count lines:\n%q", logged)
		}
	})
}
