package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// The host changes the node makes, each undone by cleanup: our bridge with
// nodeIP, a cgroup root in every cgroup v1 hierarchy for the kubelet's pods,
// and sysctls: IPv4 forwarding (pods reach Service IPs through the host) and
// the kernel tunables the kubelet sets on start (overcommit, panic on oops...;
// protectKernelDefaults would make it refuse to start instead). Their values
// from before are saved once and restored on stop.

var savedSysctls = []string{
	"net/ipv4/ip_forward",
	"net/ipv4/conf/all/route_localnet",
	"vm/overcommit_memory",
	"vm/panic_on_oom",
	"kernel/panic",
	"kernel/panic_on_oops",
	"kernel/keys/root_maxkeys",
	"kernel/keys/root_maxbytes",
}

func hostSetup(l layout) error {
	if err := sh("ip", "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	if err := sh("ip", "addr", "add", nodeIPCIDR, "dev", bridgeName); err != nil {
		return err
	}
	if err := sh("ip", "link", "set", bridgeName, "up"); err != nil {
		return err
	}
	saved := l.path("sysctls.saved")
	if _, err := os.Stat(saved); errors.Is(err, os.ErrNotExist) {
		var b strings.Builder
		for _, name := range savedSysctls {
			v, err := os.ReadFile("/proc/sys/" + name)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "%s=%s\n", name, strings.TrimSpace(string(v)))
		}
		if err := os.WriteFile(saved, []byte(b.String()), 0o600); err != nil {
			return err
		}
	}
	if err := guardEgress(); err != nil {
		return fmt.Errorf("egress guard: %w", err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		return err
	}
	for _, h := range cgroupHierarchies() {
		dir := filepath.Join(h, cgroupRoot)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if filepath.Base(h) == "cpuset" {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				v, err := os.ReadFile(filepath.Join(h, f))
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// kwokPodCIDR is the control plane's KWOK pod range (e2e/controlplane/kwok.go):
// fake pods' IPs, which kube-proxy on this node turns into Service endpoints.
const kwokPodCIDR = "10.244.0.0/16"

// serviceCIDR is the control plane's --service-cluster-ip-range.
const serviceCIDR = "10.0.0.0/16"

// guardEgress installs the project's network rule in iptables before ip_forward
// is on: nothing leaves through the node's Services or pods for an address
// that is not ours. PYNODE-FORWARD rejects what a pod sends beyond our bridge
// (the CNI config routes pods' default traffic to the host, which forwards
// it) and what a Service DNATs to a KWOK pod; PYNODE-OUTPUT rejects the host's
// own packets DNATed to a KWOK pod, and the host's packets to a ClusterIP that
// kube-proxy does not (yet) DNAT: the API server probes metrics-server's
// ClusterIP, and the host routes the Service range by its default route. The chains go with the KUBE-*/CNI-* ones
// on cleanup (sweepIPTables).
func guardEgress() error {
	rules := fmt.Sprintf(`*filter
:%[1]s - [0:0]
:%[2]s - [0:0]
-A %[1]s -i %[3]s ! -o %[3]s -j REJECT
-A %[1]s -d %[4]s -j REJECT
-A %[2]s -d %[4]s -j REJECT
-A %[2]s -d %[5]s -j REJECT
-I FORWARD 1 -j %[1]s
-I OUTPUT 1 -j %[2]s
COMMIT
`, guardForward, guardOutput, bridgeName, kwokPodCIDR, serviceCIDR)
	cmd := exec.Command("iptables-restore", "--noflush")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %v: %s", err, out)
	}
	return nil
}

const (
	guardForward = "PYNODE-FORWARD"
	guardOutput  = "PYNODE-OUTPUT"
)

// cgroupHierarchies lists the mounted cgroup v1 hierarchies.
func cgroupHierarchies() []string {
	raw, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup" {
			out = append(out, f[1])
		}
	}
	return out
}

func sh(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lockMachine takes the machine-wide lock of the real node: the bridge name,
// the node address, the cgroup root and the KUBE-*/CNI-* iptables chains are
// global, so only one real node (and one cleanup) may run on a machine.
func lockMachine() (*os.File, error) {
	f, err := os.OpenFile("/run/pynomaly-real-node.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(f.Name())
		_ = f.Close()
		return nil, fmt.Errorf("another real node runs on this machine (%s): one per machine", strings.TrimSpace(string(owner)))
	}
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(fmt.Sprintf("pid %d\n", os.Getpid())), 0)
	return f, nil
}

// restoreSysctls writes back the values saved before the node started.
func restoreSysctls(l layout) error {
	saved := l.path("sysctls.saved")
	raw, err := os.ReadFile(saved)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var errs []error
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		cur, err := os.ReadFile("/proc/sys/" + name)
		if err == nil && strings.TrimSpace(string(cur)) == value {
			continue
		}
		if err := os.WriteFile("/proc/sys/"+name, []byte(value+"\n"), 0o644); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		_ = os.Remove(saved)
	}
	return errors.Join(errs...)
}
