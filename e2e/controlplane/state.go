package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/pynomaly/pynomaly-operator/e2e/clusterkit"
)

// ports are chosen once per data dir and persisted, so a restarted control
// plane answers on the address already written into the kubeconfig.
type ports struct {
	EtcdClient int `json:"etcdClient"`
	EtcdPeer   int `json:"etcdPeer"`
	APIServer  int `json:"apiserver"`
	Scheduler  int `json:"scheduler"`
}

// state is the on-disk layout of one control plane.
type state struct {
	dir   string
	ports ports
}

func openState(dir string) (*state, error) {
	for _, d := range []string{dir, filepath.Join(dir, "pki"), filepath.Join(dir, "logs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	st := &state{dir: dir}
	raw, err := os.ReadFile(st.path("ports.json"))
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &st.ports); err != nil {
			return nil, fmt.Errorf("%s: %w", st.path("ports.json"), err)
		}
		return st, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	free, err := clusterkit.FreePorts(4)
	if err != nil {
		return nil, err
	}
	st.ports = ports{EtcdClient: free[0], EtcdPeer: free[1], APIServer: free[2], Scheduler: free[3]}
	raw, err = json.MarshalIndent(st.ports, "", "  ")
	if err != nil {
		return nil, err
	}
	return st, os.WriteFile(st.path("ports.json"), raw, 0o600)
}

func (s *state) path(parts ...string) string {
	return filepath.Join(append([]string{s.dir}, parts...)...)
}

func (s *state) pki(name string) string     { return s.path("pki", name) }
func (s *state) kubeconfigPath() string     { return s.path("kubeconfig") }
func (s *state) etcdURL() string            { return fmt.Sprintf("http://127.0.0.1:%d", s.ports.EtcdClient) }
func (s *state) etcdPeerURL() string        { return fmt.Sprintf("http://127.0.0.1:%d", s.ports.EtcdPeer) }
func (s *state) apiserverURL() string       { return fmt.Sprintf("https://127.0.0.1:%d", s.ports.APIServer) }
func (s *state) logFile(name string) string { return s.path("logs", name+".log") }

// writePIDFile records the main PID, its process group and the children, so
// `cluster.sh stop` and the pytest fixture can stop everything (the group
// kill is the primary mechanism; the list is for humans and fallbacks).
func writePIDFile(s *state, children *clusterkit.Children) error {
	var b strings.Builder
	fmt.Fprintf(&b, "controlplane %d\n", os.Getpid())
	fmt.Fprintf(&b, "pgid %d\n", pgid())
	if children != nil {
		for _, c := range children.List() {
			fmt.Fprintf(&b, "%s %d\n", c.Name, c.Cmd.Process.Pid)
		}
	}
	return os.WriteFile(s.path("pids"), []byte(b.String()), 0o600)
}

// pgid is our process group: the scheduler and KWOK (clusterkit.Children) are in it.
func pgid() int {
	g, err := syscall.Getpgid(0)
	if err != nil {
		return -1
	}
	return g
}
