package manifest

import (
	"errors"
	"strings"
)

// splitWords splits a command line into arguments as Convox v3 does
// (github.com/kballard/go-shellquote, v3:provider/k8s): words are separated
// by spaces, tabs and newlines; '…' is literal; inside "…" a backslash
// escapes only \ " $ ` and newline; outside quotes a backslash escapes any
// character, and backslash-newline joins lines. Nothing is expanded ($HOME,
// globs, ~ stay as written) because no shell runs the result; a command
// that needs one says so: sh -c '…'.
func splitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); {
		switch c := s[i]; c {
		case ' ', '\t', '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			i++
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("unterminated backslash escape")
			}
			if s[i+1] != '\n' {
				w.WriteByte(s[i+1])
				inWord = true
			}
			i += 2
		case '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single-quoted string")
			}
			w.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		case '"':
			inWord = true
			i++
			for {
				if i == len(s) {
					return nil, errors.New("unterminated double-quoted string")
				}
				c := s[i]
				if c == '"' {
					i++
					break
				}
				if c == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					if s[i+1] != '\n' {
						w.WriteByte(s[i+1])
					}
					i += 2
					continue
				}
				w.WriteByte(c)
				i++
			}
		default:
			w.WriteByte(c)
			inWord = true
			i++
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// quoteWords joins args into a command line that splitWords turns back into
// args: plain words as they are, anything else in single quotes.
func quoteWords(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
			quoted[i] = a
		} else {
			quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(quoted, " ")
}

// SplitWords splits a command line into arguments by the rules Service.Args
// uses, for commands that do not come from a manifest (`convox run`).
func SplitWords(s string) ([]string, error) { return splitWords(s) }
