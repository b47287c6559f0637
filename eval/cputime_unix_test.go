//go:build unix

package eval

import (
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) the process has used, a measure of
// work that other processes on a shared machine do not inflate the way they do wall time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
