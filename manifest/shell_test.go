package manifest

import (
	"slices"
	"testing"
)

func TestService_Args(t *testing.T) {
	tests := []struct {
		command string
		want    []string
	}{
		{"", nil},
		{"   ", nil},
		{"bin/web", []string{"bin/web"}},
		{"  bin/web  --port 3000 ", []string{"bin/web", "--port", "3000"}},
		{"a\tb\nc", []string{"a", "b", "c"}},
		{`sh -c 'echo $HOME && sleep 1'`, []string{"sh", "-c", "echo $HOME && sleep 1"}},
		{`echo "hello world"`, []string{"echo", "hello world"}},
		{`echo "a \"q\" \$x \\ \n"`, []string{"echo", `a "q" $x \ \n`}},
		{`echo 'it\'s'`, nil}, // a backslash is literal in single quotes, so the quote is unterminated
		{`echo it\'s`, []string{"echo", "it's"}},
		{`echo a\ b`, []string{"echo", "a b"}},
		{"echo a \\\n b", []string{"echo", "a", "b"}},
		{"echo \"a\\\nb\"", []string{"echo", "ab"}},
		{`echo '' ""`, []string{"echo", "", ""}},
		{`echo x'y'"z"`, []string{"echo", "xyz"}},
		{`echo $HOME * ~`, []string{"echo", "$HOME", "*", "~"}},
		{`echo "unterminated`, nil},
		{`echo trailing\`, nil},
		{"echo ünïcødé 'ß'", []string{"echo", "ünïcødé", "ß"}},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			if got := (Service{Command: tt.command}).Args(); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitWords_errors(t *testing.T) {
	tests := map[string]string{
		`echo 'x`:   "unterminated single-quoted string",
		`echo "x`:   "unterminated double-quoted string",
		`echo "x\"`: "unterminated double-quoted string",
		`echo x\`:   "unterminated backslash escape",
	}
	for in, want := range tests {
		if _, err := splitWords(in); errString(err) != want {
			t.Errorf("splitWords(%q): got %v, want %s", in, err, want)
		}
	}
}

func TestQuoteWords(t *testing.T) {
	tests := [][]string{
		{"bin/web", "--port=3000"},
		{"sh", "-c", "echo 'hi' && exit 1"},
		{"", "a b", `"`, `\`, "$HOME", "it's"},
	}
	for _, args := range tests {
		got, err := splitWords(quoteWords(args))
		if err != nil || !slices.Equal(got, args) {
			t.Errorf("splitWords(quoteWords(%q)) = %q, %v", args, got, err)
		}
	}
}

func TestTimer_Args(t *testing.T) {
	if got, want := (Timer{Command: `bin/cleanup --older-than "3 days"`}).Args(), []string{"bin/cleanup", "--older-than", "3 days"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
