package rackbench

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
)

// Machine describes where a benchmark ran, for its report: figures from
// another machine are not comparable. Empty strings are unknown.
type Machine struct {
	CPUs                     int
	CPU, Mem, Kernel, Docker string
	Go                       string
}

// DescribeMachine reads the machine's CPUs, memory, kernel and Docker
// Engine version.
func DescribeMachine(ctx context.Context) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if out, err := exec.CommandContext(ctx, "free", "-h").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "Mem:" {
				m.Mem = f[1]
			}
		}
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(data))
	}
	if out, err := Docker(ctx, "version", "--format", "{{.Server.Version}}"); err == nil {
		m.Docker = strings.TrimSpace(out)
	}
	return m
}

// OrUnknown is s, or "unknown" in a report when s is empty.
func OrUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Verdict is a target's PASS or FAIL in a report.
func Verdict(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**FAIL**"
}

// Stats are a sample's median, min and max.
type Stats struct{ Med, Min, Max float64 }

// Summarize is the Stats of xs; zero when xs is empty. The median of an
// even count is the mean of the middle two.
func Summarize(xs []float64) Stats {
	if len(xs) == 0 {
		return Stats{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stats{Med: med, Min: s[0], Max: s[len(s)-1]}
}
