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

// child is one process the node runs (containerd, kubelet, kube-proxy,
// CoreDNS, metrics-server). Children stay in our process group and get
// SIGKILL from the kernel if we die first (Pdeathsig), so a crashed
// supervisor leaves no daemon behind; `node cleanup` then removes what they
// created (pods, mounts, iptables rules, the bridge).
type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

type childSet struct {
	failed   chan<- error // gets the first unexpected exit
	mu       sync.Mutex
	children []*child
	stopping bool
}

func (cs *childSet) start(name, logPath string, cmd *exec.Cmd) error {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the forking *thread* exits: keep it alive.
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
	logf("started %s (pid %d, log %s)", name, cmd.Process.Pid, logPath)
	return nil
}

func (cs *childSet) list() []*child {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return append([]*child(nil), cs.children...)
}

// watch reports the child's exit when we are not stopping.
func (cs *childSet) watch(c *child) {
	err := <-c.done
	c.done <- err // keep the result for stopOne
	cs.mu.Lock()
	stopping := cs.stopping
	cs.mu.Unlock()
	if !stopping {
		select {
		case cs.failed <- fmt.Errorf("%s exited: %v", c.name, err):
		default:
		}
	}
}

// stopOne stops the named child: SIGTERM, SIGKILL after grace.
func (cs *childSet) stopOne(name string, grace time.Duration) {
	cs.mu.Lock()
	cs.stopping = true
	cs.mu.Unlock()
	for _, c := range cs.list() {
		if c.name != name {
			continue
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-c.done:
			c.done <- err
		case <-time.After(grace):
			_ = c.cmd.Process.Kill()
			err := <-c.done
			c.done <- err
		}
	}
}

// stop stops every child in reverse start order.
func (cs *childSet) stop() {
	list := cs.list()
	for i := len(list) - 1; i >= 0; i-- {
		cs.stopOne(list[i].name, 5*time.Second)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s node: "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
