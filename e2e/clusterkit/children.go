package clusterkit

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// Child is one process a Children set runs.
type Child struct {
	Name string
	Cmd  *exec.Cmd
	done chan error
}

// Children runs processes that must not outlive us. They stay in our process
// group (killing the group stops them) and get SIGKILL from the kernel if we
// die first (Pdeathsig), so a crashed supervisor leaves no orphan behind.
type Children struct {
	// Failed gets, without blocking, each child's exit that happens before
	// a stop began (give it room for one error per child).
	Failed chan<- error
	// Logf reports each start (nil: silent).
	Logf func(format string, args ...any)

	mu       sync.Mutex
	children []*Child
	stopping bool
}

// Start runs cmd with stdout and stderr appended to logPath.
func (cs *Children) Start(name, logPath string, cmd *exec.Cmd) error {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &Child{Name: name, Cmd: cmd, done: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the *thread* that forked the child exits, and
		// Go may retire idle threads; pin this goroutine to its thread for
		// the child's whole life so only our death kills the child.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.done <- cmd.Wait()
		_ = logFile.Close()
	}()
	if err := <-started; err != nil {
		_ = logFile.Close()
		return fmt.Errorf("start %s: %w", name, err)
	}
	cs.mu.Lock()
	cs.children = append(cs.children, c)
	cs.mu.Unlock()
	go cs.watch(c)
	if cs.Logf != nil {
		cs.Logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	}
	return nil
}

// List is the children started so far, in start order.
func (cs *Children) List() []*Child {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]*Child(nil), cs.children...)
}

// watch reports the child's exit to Failed unless we are stopping.
func (cs *Children) watch(c *Child) {
	err := <-c.done
	c.done <- err // keep the result for the stops
	cs.mu.Lock()
	stopping := cs.stopping
	cs.mu.Unlock()
	if !stopping && cs.Failed != nil {
		select {
		case cs.Failed <- fmt.Errorf("%s exited: %v", c.Name, err):
		default:
		}
	}
}

func (cs *Children) beginStop() {
	cs.mu.Lock()
	cs.stopping = true
	cs.mu.Unlock()
}

// await waits up to grace for c to exit, then kills it and reaps it.
func (c *Child) await(grace time.Duration) {
	select {
	case err := <-c.done:
		c.done <- err
	case <-time.After(grace):
		_ = c.Cmd.Process.Kill()
		err := <-c.done
		c.done <- err
	}
}

// Stop sends SIGTERM to every child at once and SIGKILL to those still
// alive after grace. Safe to call more than once.
func (cs *Children) Stop(grace time.Duration) {
	cs.beginStop()
	list := cs.List()
	for _, c := range list {
		_ = c.Cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range list {
		c.await(grace)
	}
}

// StopOne stops the named child: SIGTERM, SIGKILL after grace.
func (cs *Children) StopOne(name string, grace time.Duration) {
	cs.beginStop()
	for _, c := range cs.List() {
		if c.Name != name {
			continue
		}
		_ = c.Cmd.Process.Signal(syscall.SIGTERM)
		c.await(grace)
	}
}
