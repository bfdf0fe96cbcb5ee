package artifact

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/djdeploy/djdeploy/internal/problem"
)

func TestExcluder(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{IgnoreFile: "# comment\n*.log\n/docs/\nbuild\n!keep.log\nsrc/**/fixtures/\n"})
	ex, err := NewExcluder(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path  string
		isDir bool
		want  bool
	}{
		{".git", true, true},
		{"app/__pycache__", true, true},
		{"app/views.pyc", false, true},
		{".venv", true, true},
		{"venv", true, true},
		{"antenv", true, true},
		{"frontend/node_modules", true, true},
		{".env", false, true},
		{".env.production", false, true},
		{".python_packages", true, true},
		{"app/views.py", false, false},
		{"venv.py", false, false},        // folder pattern, not a file
		{"environment.py", false, false}, // .env is not a prefix match
		{"manage.py", false, false},
		// .djdeployignore
		{"debug.log", false, true},
		{"keep.log", false, false}, // negated
		{"docs", true, true},
		{"app/docs", true, false}, // anchored to the root
		{"build", true, true},
		{"app/build", false, true},
		{"src/a/b/fixtures", true, true},
		{"src/fixtures.py", false, false},
	}
	for _, tt := range tests {
		if got := ex.Excluded(tt.path, tt.isDir); got != tt.want {
			t.Errorf("Excluded(%q, dir=%v) = %v, want %v", tt.path, tt.isDir, got, tt.want)
		}
	}
}

func names(ents []fileEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

func TestCollectExcludesAndSymlinks(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"manage.py":                 "",
		"app/views.py":              "",
		"app/__pycache__/views.pyc": "",
		".git/HEAD":                 "",
		"node_modules/x/index.js":   "",
		"myenv/pyvenv.cfg":          "home = /usr/bin\n",
		"myenv/lib/site.py":         "",
		"staticfiles/admin/x.css":   "",
		"assets/logo.svg":           "<svg/>",
		"bin/run.sh":                "#!/bin/sh\n",
	})
	if err := os.Chmod(filepath.Join(root, "bin/run.sh"), 0o700); err != nil {
		t.Fatal(err)
	}
	// A link to a file inside the project is stored as the file.
	if err := os.Symlink("assets/logo.svg", filepath.Join(root, "logo.svg")); err != nil {
		t.Fatal(err)
	}
	// A link to an excluded file or folder is left out with it: config.txt
	// -> .env once shipped the .env the defaults keep out.
	writeFiles(t, root, map[string]string{".env": "SECRET_KEY=x\n"})
	for link, target := range map[string]string{"config.txt": ".env", "app/cfg": "../.env", "history": ".git"} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	ex, err := NewExcluder(root)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := filepath.EvalSymlinks(root)
	ex.ExcludeDir(filepath.Join(real, "staticfiles"), "STATIC_ROOT")
	ents, err := collect(root, "", ex, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(names(ents), " ")
	want := "app/ app/views.py assets/ assets/logo.svg bin/ bin/run.sh logo.svg manage.py"
	if got != want {
		t.Fatalf("entries:\n got %s\nwant %s", got, want)
	}
	for _, e := range ents {
		switch e.Name {
		case "bin/run.sh":
			if e.Mode != 0o755 {
				t.Errorf("executable mode %v, want 0755", e.Mode)
			}
		case "logo.svg":
			if e.Mode != 0o644 || e.Size != 6 || !strings.HasSuffix(e.Src, "assets/logo.svg") {
				t.Errorf("link entry %+v should read assets/logo.svg", e)
			}
		}
	}
}

func TestCollectRefusesBadSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeFiles(t, outside, map[string]string{"secret.txt": "x"})
	tests := []struct {
		name   string
		setup  func(root string) error
		errHas string
	}{
		{"file outside", func(root string) error {
			return os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "app", "secret.txt"))
		}, "points outside the project"},
		{"relative escape", func(root string) error {
			return os.Symlink("../../..", filepath.Join(root, "app", "up"))
		}, "points outside the project"},
		{"dangling", func(root string) error {
			return os.Symlink("nowhere", filepath.Join(root, "app", "gone"))
		}, "points to nothing"},
		{"loop", func(root string) error {
			if err := os.Symlink("b", filepath.Join(root, "app", "a")); err != nil {
				return err
			}
			return os.Symlink("a", filepath.Join(root, "app", "b"))
		}, "is a loop"},
		{"folder link to its parent", func(root string) error {
			return os.Symlink("..", filepath.Join(root, "app", "parent"))
		}, "a loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"app/views.py": ""})
			if err := tt.setup(root); err != nil {
				t.Fatal(err)
			}
			ex, _ := NewExcluder(root)
			_, err := collect(root, "", ex, nil)
			if err == nil {
				t.Fatal("want an error")
			}
			if !strings.Contains(err.Error(), tt.errHas) || problem.ExitCode(err) != problem.ExitUsage {
				t.Fatalf("got %v (exit %d), want a usage error containing %q", err, problem.ExitCode(err), tt.errHas)
			}
			// An excluded link is never looked at.
			writeFiles(t, root, map[string]string{IgnoreFile: "app/*\n!app/views.py\n"})
			ex, _ = NewExcluder(root)
			if _, err := collect(root, "", ex, nil); err != nil {
				t.Fatalf("excluded link still refused: %v", err)
			}
		})
	}
}

func TestCollectFollowsFolderLinkInside(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{"shared/util.py": "x = 1\n"})
	if err := os.Symlink("shared", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	ents, err := collect(root, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names(ents), " "); got != "lib/ lib/util.py shared/ shared/util.py" {
		t.Fatalf("got %s", got)
	}
}
