package engine

import (
	"reflect"
	"testing"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"A=1\nB=two words\n", map[string]string{"A": "1", "B": "two words"}},
		{" K =v=w\nnovalue\n=x\nE=\r", map[string]string{"K": "v=w", "E": ""}},
	}
	for _, tt := range tests {
		if got := parseEnv(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseEnv(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
	if got := formatEnv(map[string]string{"B": "2", "A": "1"}); got != "A=1\nB=2" {
		t.Errorf("formatEnv = %q", got)
	}
}

func TestEnvDescription(t *testing.T) {
	tests := []struct {
		old, new map[string]string
		want     string
	}{
		{map[string]string{}, map[string]string{"B": "1", "A": "1"}, "env add:A,B"},
		{map[string]string{"A": "1", "B": "1", "C": "1"}, map[string]string{"A": "2", "B": "1", "D": "1"}, "env add:D change:A remove:C"},
		{map[string]string{"A": "1"}, map[string]string{"A": "1"}, "env"},
	}
	for _, tt := range tests {
		if got := envDescription(tt.old, tt.new); got != tt.want {
			t.Errorf("envDescription(%v, %v) = %q, want %q", tt.old, tt.new, got, tt.want)
		}
	}
}
