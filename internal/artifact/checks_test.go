package artifact

import (
	"reflect"
	"testing"
)

func TestParseChecks(t *testing.T) {
	tests := []struct {
		name string
		out  string
		want []Check
	}{
		{
			name: "no issues",
			out:  "System check identified no issues (0 silenced).\n",
			want: []Check{},
		},
		{
			name: "warnings with and without hints and objects",
			out: `System check identified some issues:

WARNINGS:
?: (security.W004) You have not set a value for the SECURE_HSTS_SECONDS setting.
?: (security.W008) Your SECURE_SSL_REDIRECT setting is not set to True.
admin.LogEntry: (models.W042) Auto-created primary key used when not defining a primary key type.
	HINT: Configure the DEFAULT_AUTO_FIELD setting.

System check identified 3 issues (0 silenced).
`,
			want: []Check{
				{ID: "security.W004", Level: "WARNING", Message: "You have not set a value for the SECURE_HSTS_SECONDS setting."},
				{ID: "security.W008", Level: "WARNING", Message: "Your SECURE_SSL_REDIRECT setting is not set to True."},
				{ID: "models.W042", Level: "WARNING", Message: "admin.LogEntry: Auto-created primary key used when not defining a primary key type.", Hint: "Configure the DEFAULT_AUTO_FIELD setting."},
			},
		},
		{
			name: "errors make Django exit non-zero with a SystemCheckError prefix",
			out: `SystemCheckError: System check identified some issues:

ERRORS:
?: (staticfiles.E002) The STATICFILES_DIRS setting should not contain the STATIC_ROOT setting.

WARNINGS:
?: (pages.W001) SECRET_KEY is the development fallback.
	HINT: Set the SECRET_KEY app setting
spanning two lines.

System check identified 2 issues (0 silenced).
`,
			want: []Check{
				{ID: "staticfiles.E002", Level: "ERROR", Message: "The STATICFILES_DIRS setting should not contain the STATIC_ROOT setting."},
				{ID: "pages.W001", Level: "WARNING", Message: "SECRET_KEY is the development fallback.", Hint: "Set the SECRET_KEY app setting\nspanning two lines."},
			},
		},
		{
			name: "noise before the report is ignored",
			out:  "some print from settings: (x.W001) not a finding\nWARNINGS:\n?: (x.W001) real\n",
			want: []Check{{ID: "x.W001", Level: "WARNING", Message: "real"}},
		},
		{
			name: "windows line ends and critical",
			out:  "CRITICALS:\r\n?: (x.C001) boom\r\n",
			want: []Check{{ID: "x.C001", Level: "CRITICAL", Message: "boom"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseChecks(tt.out)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}
