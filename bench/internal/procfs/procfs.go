// Package procfs reads from Linux's /proc what the benchmarks under bench/
// measure: the CPU time of processes and of the whole host, and which
// processes to charge it to. A benchmark's figures are CPU time per unit of
// work, so every party's time has to be read the same way, and the host's
// to tell other load on a shared machine from ours.
package procfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tick is USER_HZ, the unit of /proc's CPU times (getconf CLK_TCK; 100/s
// on Linux whatever the kernel's own HZ).
var Tick = sync.OnceValue(func() time.Duration {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 10 * time.Millisecond
	}
	hz, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || hz <= 0 {
		return 10 * time.Millisecond
	}
	return time.Second / time.Duration(hz)
})

// CPUTime is the user plus system CPU time process pid has used so far,
// all its threads; ok is false when it cannot be read (pid ≤ 0, gone).
func CPUTime(pid int) (d time.Duration, ok bool) {
	if pid <= 0 {
		return 0, false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count the fields after it.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(u+s) * Tick(), true
}

// CPUTimes is the CPU time of processes together, leaving out those that
// cannot be read (a process that is gone has nothing more to count).
func CPUTimes(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		if d, ok := CPUTime(pid); ok {
			total += d
		}
	}
	return total
}

// Ticks are the host's CPU time so far in clock ticks, summed over all
// CPUs: the first eight columns of /proc/stat's cpu line (guest time is
// counted in user already). Which of them is "busy" depends on what a
// benchmark compares it with, so each one sums its own.
type Ticks struct {
	User, Nice, System, Idle, IOWait, IRQ, SoftIRQ, Steal int64
}

// Total is all the CPUs' time.
func (t Ticks) Total() int64 {
	return t.User + t.Nice + t.System + t.Idle + t.IOWait + t.IRQ + t.SoftIRQ + t.Steal
}

// Sub is the time from u to t.
func (t Ticks) Sub(u Ticks) Ticks {
	return Ticks{t.User - u.User, t.Nice - u.Nice, t.System - u.System, t.Idle - u.Idle,
		t.IOWait - u.IOWait, t.IRQ - u.IRQ, t.SoftIRQ - u.SoftIRQ, t.Steal - u.Steal}
}

// Host reads the host's CPU ticks; zero if /proc/stat cannot be read.
func Host() Ticks {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Ticks{}
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return Ticks{}
	}
	var v [8]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	return Ticks{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]}
}

// Children lists the direct child processes of pid (a proxy's workers, a
// container's processes under its init).
func Children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	return out
}

// Find returns the pid of the one process named comm whose command line
// contains arg (any, if arg is ""); 0 if there is none or several, since
// then whose time to count is unclear.
func Find(comm, arg string) int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	found := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		c, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err != nil || strings.TrimSpace(string(c)) != comm {
			continue
		}
		if arg != "" {
			cmdline, err := os.ReadFile("/proc/" + d.Name() + "/cmdline")
			if err != nil || !strings.Contains(string(cmdline), arg) {
				continue
			}
		}
		if found != 0 {
			return 0
		}
		found = pid
	}
	return found
}

// DockerProxies lists the docker-proxy processes that publish hostPort
// (none when Docker forwards the port in the kernel instead): they carry
// every connection to a published port, so their CPU time is the
// backend's.
func DockerProxies(hostPort string) []int {
	var pids []int
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, c := range cmdlines {
		data, err := os.ReadFile(c)
		if err != nil {
			continue
		}
		args := strings.Split(string(data), "\x00")
		if len(args) == 0 || filepath.Base(args[0]) != "docker-proxy" {
			continue
		}
		for i := 0; i+1 < len(args); i++ {
			if args[i] == "-host-port" && args[i+1] == hostPort {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(c)))
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
