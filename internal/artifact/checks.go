package artifact

import (
	"regexp"
	"strings"
)

// Django prints system check results grouped under level headers:
//
//	WARNINGS:
//	?: (security.W004) You have not set a value for ...
//	admin.LogEntry: (models.W042) Auto-created primary key ...
//		HINT: Configure the DEFAULT_AUTO_FIELD setting ...
//
// (django/core/management/base.py, CheckMessage.__str__).
var (
	checkHeaderRe = regexp.MustCompile(`^(CRITICALS|ERRORS|WARNINGS|INFOS|DEBUGS):$`)
	checkIssueRe  = regexp.MustCompile(`^(.*?): \(([A-Za-z0-9_][A-Za-z0-9_.-]*)\) (.*)$`)
)

var checkHeaderLevel = map[string]string{
	"CRITICALS": "CRITICAL", "ERRORS": "ERROR", "WARNINGS": "WARNING", "INFOS": "INFO", "DEBUGS": "DEBUG",
}

// ParseChecks reads the findings out of `manage.py check` output (stdout
// and stderr together, with or without the SystemCheckError prefix).
// Findings on objects other than "?" carry the object in the message.
func ParseChecks(out string) []Check {
	checks := []Check{}
	level := ""
	var cur *Check
	flush := func() {
		if cur != nil {
			cur.Message = strings.TrimSpace(cur.Message)
			cur.Hint = strings.TrimSpace(cur.Hint)
			checks = append(checks, *cur)
			cur = nil
		}
	}
	inHint := false
	for _, line := range strings.Split(strings.ReplaceAll(out, "\r\n", "\n"), "\n") {
		line = strings.TrimRight(line, " ")
		if m := checkHeaderRe.FindStringSubmatch(line); m != nil {
			flush()
			level = checkHeaderLevel[m[1]]
			continue
		}
		if level == "" {
			continue
		}
		if strings.HasPrefix(line, "System check identified") {
			flush()
			level = ""
			continue
		}
		trimmed := strings.TrimLeft(line, " \t")
		switch {
		case line == "":
			flush()
		case strings.HasPrefix(trimmed, "HINT: ") && cur != nil:
			cur.Hint = strings.TrimPrefix(trimmed, "HINT: ")
			inHint = true
		case !strings.HasPrefix(line, "\t") && checkIssueRe.MatchString(line):
			flush()
			m := checkIssueRe.FindStringSubmatch(line)
			msg := m[3]
			if obj := strings.TrimSpace(m[1]); obj != "?" && obj != "" {
				msg = obj + ": " + msg
			}
			cur = &Check{ID: m[2], Level: level, Message: msg}
			inHint = false
		case cur != nil:
			// A message or hint that spans lines.
			if inHint {
				cur.Hint += "\n" + trimmed
			} else {
				cur.Message += "\n" + trimmed
			}
		}
	}
	flush()
	return checks
}
