package webfiles

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// CheckName reports why a static file's name (slash-separated, relative)
// cannot be stored as a blob and served under the same URL, or nil. Blob
// Storage turns "\" into "/" (back\slash.css would be stored, re-uploaded
// on every sync, and purged as back/slash.css), refuses control characters
// and characters that are not valid Unicode, and its naming rules ask that
// no path segment end with a dot (Naming and Referencing Containers, Blobs,
// and Metadata: at most 1,024 characters and 254 segments); URLs resolve "."
// and ".." segments away. A static file must keep its name end to end, so
// each is refused by name rather than silently changed.
func CheckName(name string) error {
	switch {
	case !utf8.ValidString(name):
		return fmt.Errorf("is not valid UTF-8")
	case strings.ContainsRune(name, '\\'):
		return fmt.Errorf(`contains a backslash (\), which Blob Storage stores as "/"`)
	case len(name) > 1024:
		return fmt.Errorf("is %d characters long; blob names are at most 1024", len(name))
	}
	for _, r := range name {
		if unicode.IsControl(r) || (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE || unicode.Is(unicode.Co, r) {
			return fmt.Errorf("contains the character %s, which blob names and URLs cannot carry", strconv.QuoteRuneToASCII(r))
		}
	}
	segs := strings.Split(name, "/")
	if len(segs) > 254 {
		return fmt.Errorf("has %d folder levels; blob names allow at most 254", len(segs))
	}
	for _, s := range segs {
		if s == "" || s == "." || s == ".." {
			return fmt.Errorf("has an empty, \".\" or \"..\" path segment, which URLs resolve away")
		}
		if strings.HasSuffix(s, ".") {
			return fmt.Errorf("has a path segment ending with a dot (%q), which Blob Storage and URLs do not keep reliably", s)
		}
	}
	return nil
}

// urlSafe are the bytes a static file's URL path carries as they are. It
// is what Django's FileSystemStorage.url (filepath_to_uri: quote() with
// safe "/~!*()'") leaves alone, so the path djdeploy purges is the one the
// pages request and the CDN caches: A-Z a-z 0-9 - _ . ~ / ! * ( ) '.
// Everything else is percent-encoded from its UTF-8 bytes: "#" (%23) and
// "?" (%3F), which would end the path, space (%20), "%" (%25), "+", "&",
// "=", ";", ":", "@", ",", "$", and every non-ASCII byte. Front Door and
// classic Azure CDN purge the URL path as requested, without protocol,
// host or query ("/pictures/strasbourg.png"), case-insensitively on Front
// Door; a "*" is read as a wildcard (see cdn.BlobNamesToPaths).
func urlSafe(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.~/!*()'", c) >= 0
}

// URLPath percent-encodes a blob name (or a path of them) for a URL path
// as Django writes it into pages.
func URLPath(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if urlSafe(c) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}
