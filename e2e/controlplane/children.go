package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// child is a component that must run in its own process (kube-scheduler,
// KWOK). Children stay in our process group, so killing the group stops
// them, and get SIGKILL from the kernel if we die first (Pdeathsig), so a
// crashed control plane never leaves an orphan behind.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

type childSet struct {
	mu       sync.Mutex
	children []*child
	stopping bool
}

func (cs *childSet) start(name string, st *state, cmd *exec.Cmd) error {
	logFile, err := os.OpenFile(st.logFile(name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
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
	logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, st.logFile(name))
	return nil
}

func (cs *childSet) list() []*child {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]*child(nil), cs.children...)
}

// watch reports the first child that exits while we are not stopping.
func (cs *childSet) watch(failed chan<- error) {
	for _, c := range cs.list() {
		go func() {
			err := <-c.done
			c.done <- err // keep the result for stop()
			cs.mu.Lock()
			stopping := cs.stopping
			cs.mu.Unlock()
			if !stopping {
				failed <- fmt.Errorf("%s exited: %v", c.name, err)
			}
		}()
	}
}

// stop sends SIGTERM to every child and SIGKILL to those still alive after
// a grace period. Safe to call more than once.
func (cs *childSet) stop() {
	cs.mu.Lock()
	cs.stopping = true
	cs.mu.Unlock()
	for _, c := range cs.list() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range cs.list() {
		select {
		case err := <-c.done:
			c.done <- err
		case <-time.After(3 * time.Second):
			_ = c.cmd.Process.Kill()
		}
	}
}

func pgid() int {
	g, err := syscall.Getpgid(0)
	if err != nil {
		return -1
	}
	return g
}
