package jobs

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Runner runs one ecotune command line (prepare or train) to its end. Cancelling ctx
// interrupts it the way Ctrl-C does, so train saves a checkpoint before it exits.
type Runner interface {
	Run(ctx context.Context, args []string, stderr io.Writer) error
}

// CommandRunner runs the ecotune binary at Path as a child process: training goes through
// exactly the code `ecotune train` runs, and a crash in it cannot take the server down.
type CommandRunner struct {
	Path string
	// Grace is how long an interrupted child may take to save its checkpoint; 0 = 2 minutes.
	Grace time.Duration
}

var _ Runner = CommandRunner{}

// Run starts the command and waits for it.
func (r CommandRunner) Run(ctx context.Context, args []string, stderr io.Writer) error {
	cmd := exec.Command(r.Path, args...)
	cmd.Stdout = io.Discard
	cmd.Stderr = stderr
	cmd.Env = os.Environ()
	// The child dies with the server (Linux): a killed server leaves no orphan writing the
	// run, and on restart the job resumes from its newest checkpoint.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("jobs: start %s: %w", r.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	cmd.Process.Signal(os.Interrupt)
	grace := r.Grace
	if grace == 0 {
		grace = 2 * time.Minute
	}
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return ctx.Err()
	case <-time.After(grace):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%w; the child did not stop within %s and was killed", ctx.Err(), grace)
	}
}
