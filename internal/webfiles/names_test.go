package webfiles

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"css/site.css", "img/café.png", "hash#tag.css", "q?mark.css", "a b.css", "a*b.css", "css/.hidden", "x..y.css"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", ok, err)
		}
	}
	for name, want := range map[string]string{
		`back\slash.css`:          "backslash",
		"new\nline.css":           `'\n'`,
		"tab\t.css":               `'\t'`,
		"bell\x07.css":            `'\a'`,
		"del\x7f.css":             `'\x7f'`,
		"c1\u0085.css":            `'\u0085'`,
		"nonchar\uFFFE.css":       `'\ufffe'`,
		"private\uE000.css":       `'\ue000'`,
		"dir./x.css":              "ending with a dot",
		"x.css.":                  "ending with a dot",
		"a//b.css":                "empty",
		"a/../b.css":              `".."`,
		"bad\xff.css":             "UTF-8",
		strings.Repeat("a", 1025): "1024",
	} {
		err := CheckName(name)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckName(%q) = %v, want an error saying %s", name, err, want)
		}
	}
}

func TestURLPath(t *testing.T) {
	for in, want := range map[string]string{
		"/static/css/site.css":    "/static/css/site.css",
		"/static/hash#tag.css":    "/static/hash%23tag.css",
		"/static/q?mark.css":      "/static/q%3Fmark.css",
		"/static/a b+c&d=e;f.css": "/static/a%20b%2Bc%26d%3De%3Bf.css",
		"/static/café.png":        "/static/caf%C3%A9.png",
		"/static/100%.css":        "/static/100%25.css",
		"/static/~a!b*c(d)'e.js":  "/static/~a!b*c(d)'e.js",
		"/static/x@y:z,$.css":     "/static/x%40y%3Az%2C%24.css",
	} {
		if got := URLPath(in); got != want {
			t.Errorf("URLPath(%q) = %q, want %q", in, got, want)
		}
	}
}
