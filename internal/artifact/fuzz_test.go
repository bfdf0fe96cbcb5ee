package artifact

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
	gitignore "github.com/sabhiram/go-gitignore"
)

// defaultDirs are the folder names DefaultExcludes leave out at any depth.
var defaultDirs = []string{".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "antenv", "node_modules", ".python_packages", ".djdeploy"}

// FuzzExcluder checks the zip's exclude rules (DefaultExcludes plus a
// .djdeployignore of any content) against properties that must hold for
// every path:
//   - nothing panics, and a bad ignore file is a usage error;
//   - .djdeployignore only adds excludes: no line, negations included,
//     brings back a path the defaults leave out;
//   - version control, virtualenv, bytecode and node_modules folders are
//     excluded at any depth, and so is everything below them, even when
//     asked about directly (not only because the walk prunes them);
//   - .env files and bytecode files are excluded in every folder;
//   - a line naming a plain file (no glob characters) excludes that file,
//     anchored at the root with a leading '/', in every folder without.
func FuzzExcluder(f *testing.F) {
	for _, s := range []struct {
		ignore, rel string
		isDir       bool
		pick        uint8
	}{
		{"*.sqlite3\n/media/\n/docs/\n", "media/avatars/me.png", false, 0},
		{"# comment\n*.log\n/docs/\nbuild\n!keep.log\nsrc/**/fixtures/\n", "src/a/b/fixtures", true, 1},
		{"!.git/\n!.env\n!*.pyc\n", "app/views.pyc", false, 2},
		{"!**\n", ".env.production", false, 3},
		{"", "frontend/node_modules/react/index.js", false, 7},
		{"local_settings.py\n", "site/local_settings.py", false, 4},
		{"/settings(local).py\n", "settings(local).py", false, 5},
		{"c++/\n", "c++", true, 6},
		{"*.bak\n\\#notes.txt\n\\!important.txt\n", "#notes.txt", false, 8},
		{"deploy key.pem\n", "keys/deploy key.pem", false, 9},
		{"[abc\n", "a/b", false, 0},
		{"\\\n", "x\\y", false, 1},
		{"a/**/b/*.c\n", "a/x/y/b/z.c", false, 2},
		{"**/secrets/\n", "config/secrets", true, 3},
		{"\r\n*.tmp\r\n", "x.tmp", false, 4},
		{"$HOME/\n", "$HOME/.ssh/id_rsa", false, 5},
		{"", "dir\nwith newline/.git/config", false, 0},
		{"", "réglages/.env", false, 1},
		{"", "\xff\xfe/.venv/bin/python", false, 2},
	} {
		f.Add(s.ignore, s.rel, s.isDir, s.pick)
	}
	project := f.TempDir() // one per process: fuzz inputs run one at a time
	defaultsOnly := &Excluder{defaults: gitignore.CompileIgnoreLines(DefaultExcludes...), dirs: map[string]string{}}
	f.Fuzz(func(t *testing.T, ignore, rel string, isDir bool, pick uint8) {
		ex := newFuzzExcluder(t, project, ignore)
		got := ex.Excluded(rel, isDir)
		if defaultsOnly.Excluded(rel, isDir) && !got {
			t.Fatalf("%s line(s) %q brought back %q (dir=%v), which the default excludes leave out", IgnoreFile, ignore, rel, isDir)
		}

		segs := segments(rel)
		pre := strings.Join(segs, "/")
		join := func(parts ...string) string {
			if pre == "" {
				return strings.Join(parts, "/")
			}
			return pre + "/" + strings.Join(parts, "/")
		}

		dir := defaultDirs[int(pick)%len(defaultDirs)]
		for _, c := range []struct {
			p     string
			isDir bool
		}{
			{join(dir), true},
			{join(dir, "config"), false},
			{join(dir, "objects", "pack"), true},
		} {
			if !ex.Excluded(c.p, c.isDir) {
				t.Fatalf("%q (dir=%v) is not excluded, but %s/ always is (ignore file %q)", c.p, c.isDir, dir, ignore)
			}
		}
		stem := "x"
		if len(segs) > 0 {
			stem = segs[len(segs)-1]
		}
		for _, name := range []string{".env", ".env." + stem, stem + ".pyc", stem + ".pyo"} {
			if p := join(name); !ex.Excluded(p, false) {
				t.Fatalf("file %q is not excluded (ignore file %q)", p, ignore)
			}
		}

		// A plain name in .djdeployignore excludes exactly that file.
		if len(segs) > 0 && plainName(stem) {
			anchored := newFuzzExcluder(t, project, "/"+stem+"\n")
			if !anchored.Excluded(stem, false) {
				t.Fatalf("%s line %q does not exclude the file %q", IgnoreFile, "/"+stem, stem)
			}
			anywhere := newFuzzExcluder(t, project, stem+"\n")
			if p := join(stem); !anywhere.Excluded(p, false) {
				t.Fatalf("%s line %q does not exclude the file %q", IgnoreFile, stem, p)
			}
		}
	})
}

// newFuzzExcluder builds the Excluder the way a build does: from a
// .djdeployignore file in the project folder.
func newFuzzExcluder(t *testing.T, dir, ignore string) *Excluder {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, IgnoreFile), []byte(ignore), 0o644); err != nil {
		t.Fatal(err)
	}
	ex, err := NewExcluder(dir)
	if err != nil {
		if p, ok := problem.As(err); !ok || !p.Usage {
			t.Fatalf("NewExcluder: %v is not a usage error", err)
		}
		t.Skip("ignore file rejected:", err)
	}
	return ex
}

// segments turns any string into the folder names of a relative path (no
// empty, "." or ".." parts), the only form the walk produces.
func segments(rel string) []string {
	var out []string
	for _, s := range strings.Split(rel, "/") {
		if s != "" && s != "." && s != ".." {
			out = append(out, s)
		}
	}
	return out
}

// plainName reports whether a file name is matched literally by gitignore:
// no glob or escape characters, no leading '#' or '!', no surrounding
// spaces (which gitignore trims) and no line breaks.
func plainName(s string) bool {
	if s == "" || strings.ContainsAny(s, "*?[]\\\n\r") || strings.TrimSpace(s) != s || s[0] == '#' || s[0] == '!' {
		return false
	}
	return true
}

// Found by FuzzExcluder: go-gitignore passes '+', '(', ')', '$'... into a
// regular expression, so these lines excluded nothing; a folder name with a
// line break hid the .git and .env inside it; a non-UTF-8 line was dropped.
func TestExcluderLiteralCharacters(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{IgnoreFile: "settings(local).py\n/c++/\n$HOME/\n[!a]bc.txt\na|b\n{x}.cfg\n"})
	ex, err := NewExcluder(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path        string
		isDir, want bool
	}{
		{"site/settings(local).py", false, true},
		{"settings.py", false, false},
		{"c++", true, true},
		{"c", true, false},
		{"$HOME", true, true},
		{"xbc.txt", false, true},
		{"abc.txt", false, false},
		{"a|b", false, true},
		{"a", false, false},
		{"b", false, false},
		{"{x}.cfg", false, true},
		{"line\nbreak/.git", true, true},
		{"line\nbreak/.env", false, true},
		{"line\nbreak/app.py", false, false},
	} {
		if got := ex.Excluded(tc.path, tc.isDir); got != tc.want {
			t.Errorf("Excluded(%q, dir=%v) = %v, want %v", tc.path, tc.isDir, got, tc.want)
		}
	}

	bad := t.TempDir()
	writeFiles(t, bad, map[string]string{IgnoreFile: "r\xe9glages/\n"})
	_, err = NewExcluder(bad)
	if p, ok := problem.As(err); !ok || !p.Usage || !strings.Contains(err.Error(), "UTF-8") {
		t.Errorf("Latin-1 %s: got %v, want a usage error about UTF-8", IgnoreFile, err)
	}
}
