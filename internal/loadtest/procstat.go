package loadtest

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of the CPU times in /proc/PID/stat: 100 on every Linux
// architecture Go supports (the kernel's ABI fixes it, whatever CONFIG_HZ is).
const clockTicks = 100

// ProcSample is one reading of a process's CPU time and memory from /proc.
type ProcSample struct {
	At time.Time
	// CPU is user plus system time since the process started.
	CPU time.Duration
	// RSS is the resident set now, HWM its peak so far (VmRSS, VmHWM), in bytes.
	RSS, HWM int64
	// Threads is the number of OS threads.
	Threads int
}

// ParseProcStat reads utime and stime (fields 14 and 15) from the contents of /proc/PID/stat.
// The command name in parentheses may hold spaces and parentheses, so fields are counted
// from the last ')'.
func ParseProcStat(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(stat[end+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields", len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// ParseProcStatus reads VmRSS, VmHWM (in kB) and Threads from the contents of
// /proc/PID/status.
func ParseProcStatus(status string) (rss, hwm int64, threads int, err error) {
	found := 0
	for line := range strings.SplitSeq(status, "\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		n, perr := strconv.ParseInt(f[0], 10, 64)
		if perr != nil {
			continue
		}
		switch name {
		case "VmRSS":
			rss = n << 10
			found++
		case "VmHWM":
			hwm = n << 10
			found++
		case "Threads":
			threads = int(n)
		}
	}
	if found < 2 {
		return 0, 0, 0, fmt.Errorf("proc status: no VmRSS/VmHWM")
	}
	return rss, hwm, threads, nil
}

// ReadProc samples process pid now.
func ReadProc(pid int) (ProcSample, error) {
	s := ProcSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	if s.CPU, err = ParseProcStat(string(stat)); err != nil {
		return s, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	s.RSS, s.HWM, s.Threads, err = ParseProcStatus(string(status))
	return s, err
}

// MachineSample is one reading of the whole machine: load average and CPU time.
type MachineSample struct {
	At            time.Time
	Load1         float64
	Load5, Load15 float64
	// Busy and Total are jiffies from the "cpu" line of /proc/stat, over all cores.
	Busy, Total int64
}

// ParseLoadAvg reads the three load averages from /proc/loadavg.
func ParseLoadAvg(s string) (l1, l5, l15 float64, err error) {
	f := strings.Fields(s)
	if len(f) < 3 {
		return 0, 0, 0, fmt.Errorf("loadavg: %q", s)
	}
	var errs [3]error
	l1, errs[0] = strconv.ParseFloat(f[0], 64)
	l5, errs[1] = strconv.ParseFloat(f[1], 64)
	l15, errs[2] = strconv.ParseFloat(f[2], 64)
	for _, e := range errs {
		if e != nil {
			return 0, 0, 0, fmt.Errorf("loadavg: %w", e)
		}
	}
	return l1, l5, l15, nil
}

// ParseCPULine reads busy and total jiffies from the aggregate "cpu" line of /proc/stat; idle
// and iowait are not busy.
func ParseCPULine(stat string) (busy, total int64, err error) {
	for line := range strings.SplitSeq(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[0] != "cpu" {
			continue
		}
		for i, v := range f[1:] {
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil {
				return 0, 0, fmt.Errorf("proc stat cpu: %q", v)
			}
			// guest and guest_nice (fields 9, 10) are already in user and nice.
			if i >= 8 {
				break
			}
			total += n
			if i != 3 && i != 4 { // idle, iowait
				busy += n
			}
		}
		return busy, total, nil
	}
	return 0, 0, fmt.Errorf("proc stat: no cpu line")
}

// ReadMachine samples the machine now.
func ReadMachine() (MachineSample, error) {
	m := MachineSample{At: time.Now()}
	la, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return m, err
	}
	if m.Load1, m.Load5, m.Load15, err = ParseLoadAvg(string(la)); err != nil {
		return m, err
	}
	st, err := os.ReadFile("/proc/stat")
	if err != nil {
		return m, err
	}
	m.Busy, m.Total, err = ParseCPULine(string(st))
	return m, err
}

// Sampler reads processes and the machine periodically.
type Sampler struct {
	mu      sync.Mutex
	procs   map[string]int
	series  map[string][]ProcSample
	machine []MachineSample
}

// NewSampler samples the named processes.
func NewSampler(procs map[string]int) *Sampler {
	return &Sampler{procs: procs, series: map[string][]ProcSample{}}
}

// Sample reads everything once; a process that has gone is skipped.
func (s *Sampler) Sample() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, pid := range s.procs {
		if p, err := ReadProc(pid); err == nil {
			s.series[name] = append(s.series[name], p)
		}
	}
	if m, err := ReadMachine(); err == nil {
		s.machine = append(s.machine, m)
	}
}

// Series returns the samples of process name, oldest first.
func (s *Sampler) Series(name string) []ProcSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]ProcSample(nil), s.series[name]...)
}

// Machine returns the machine samples, oldest first.
func (s *Sampler) Machine() []MachineSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]MachineSample(nil), s.machine...)
}

// ProcUsage summarises a process's samples over a window.
type ProcUsage struct {
	// CPU is the CPU time used between the first and last sample; Cores is CPU per wall time.
	CPU   time.Duration
	Cores float64
	// PeakCores is the highest CPU per wall time between two consecutive samples.
	PeakCores float64
	// PeakRSS is VmHWM at the last sample; LastRSS the resident set then.
	PeakRSS, LastRSS int64
	PeakThreads      int
}

// UsageOf summarises samples (oldest first).
func UsageOf(samples []ProcSample) ProcUsage {
	var u ProcUsage
	if len(samples) == 0 {
		return u
	}
	first, last := samples[0], samples[len(samples)-1]
	u.CPU = last.CPU - first.CPU
	if wall := last.At.Sub(first.At); wall > 0 {
		u.Cores = u.CPU.Seconds() / wall.Seconds()
	}
	for i, s := range samples {
		u.PeakRSS = max(u.PeakRSS, s.HWM, s.RSS)
		u.PeakThreads = max(u.PeakThreads, s.Threads)
		if i > 0 {
			if wall := s.At.Sub(samples[i-1].At); wall > 0 {
				u.PeakCores = max(u.PeakCores, (s.CPU-samples[i-1].CPU).Seconds()/wall.Seconds())
			}
		}
	}
	u.LastRSS = last.RSS
	return u
}

// MachineUsage summarises the machine's samples over a window.
type MachineUsage struct {
	LoadStart, LoadMax, LoadEnd float64 // 1-minute load averages
	// Busy is the share of all cores' time that was not idle, 0 to 1.
	Busy float64
}

// MachineUsageOf summarises samples (oldest first).
func MachineUsageOf(samples []MachineSample) MachineUsage {
	var u MachineUsage
	if len(samples) == 0 {
		return u
	}
	first, last := samples[0], samples[len(samples)-1]
	u.LoadStart, u.LoadEnd = first.Load1, last.Load1
	for _, s := range samples {
		u.LoadMax = max(u.LoadMax, s.Load1)
	}
	if t := last.Total - first.Total; t > 0 {
		u.Busy = float64(last.Busy-first.Busy) / float64(t)
	}
	return u
}
