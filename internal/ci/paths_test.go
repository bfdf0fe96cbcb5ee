package ci

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRepoPath(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ws := t.TempDir()
	for _, tc := range []struct{ file, project, root, want string }{
		{"mysite/settings.py", "app1", wd, "app1/mysite/settings.py"},
		{"mysite/settings.py", "./app1/", "", "app1/mysite/settings.py"},
		{"mysite/settings.py", ".", wd, "mysite/settings.py"},
		{"mysite/settings.py", "", "", "mysite/settings.py"},
		{"mysite/settings.py", filepath.Join(ws, "apps", "shop"), ws, "apps/shop/mysite/settings.py"},
		{filepath.Join(ws, "app1", "x.py"), "app1", ws, "app1/x.py"},
		// Outside the repository root: left as the project names it.
		{"mysite/settings.py", "app1", ws, "app1/mysite/settings.py"},
		{"", "app1", ws, ""},
	} {
		if got := RepoPath(tc.file, tc.project, tc.root); got != tc.want {
			t.Errorf("RepoPath(%q, %q, %q) = %q, want %q", tc.file, tc.project, tc.root, got, tc.want)
		}
	}
}
