package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pynomaly/pynomaly-operator/e2e/clusterkit"
	"github.com/pynomaly/pynomaly-operator/e2e/node/iptables"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Stopping the node must leave the host as it was: no process, mount,
// iptables rule, bridge, network namespace, cgroup or sysctl change of ours.
// teardown is the orderly path; cleanup repeats the host-side steps and is
// also what `node cleanup` runs after a supervisor was killed.

func cleanupCommand(args []string) error {
	fs := flag.NewFlagSet("cleanup", flag.ContinueOnError)
	dir := fs.String("dir", ".cluster/node", "node state directory")
	if err := fs.Parse(args); err != nil {
		return err
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	lock, err := lockMachine()
	if err != nil {
		return err
	}
	defer lock.Close()
	return cleanup(layout{dir: abs}, false)
}

// teardown stops the node in dependency order while containerd still runs:
// the kubelet first (so it recreates nothing), then every pod sandbox through
// CRI (containers killed, CNI DEL: veths, addresses, portmap rules and the
// network namespaces go), then kube-proxy and containerd, then cleanup.
func teardown(l layout, o options, children *clusterkit.Children) {
	deleteAPIService(l) // first: the API server must stop dialing metrics-server's ClusterIP
	children.StopOne("metrics-server", 5*time.Second)
	children.StopOne("coredns", 5*time.Second)
	children.StopOne("kubelet", 10*time.Second)
	if err := criTeardown(l); err != nil {
		logf("pod sandboxes: %v", err)
	}
	children.StopOne("kube-proxy", 5*time.Second)
	children.StopOne("containerd", 10*time.Second)
	deleteNodeObject(l)
	if err := cleanup(l, true); err != nil {
		logf("cleanup: %v", err)
	}
}

// cleanup removes what is left on the host. Unless containerd was just torn
// down properly (afterTeardown), a containerd is started on the old state
// first so that CRI can stop the sandboxes a dead run left behind.
func cleanup(l layout, afterTeardown bool) error {
	var errs []error
	if !afterTeardown {
		deleteAPIService(l)
	}
	if _, err := os.Stat(l.path("containerd", "root")); err == nil && !afterTeardown {
		if err := criTeardownWithTemporaryContainerd(l); err != nil {
			errs = append(errs, err)
		}
	}
	killLeftovers(l)
	for _, tool := range []string{"iptables", "ip6tables"} {
		if err := sweepIPTables(tool); err != nil {
			errs = append(errs, err)
		}
	}
	if err := unmountUnder(l.dir); err != nil {
		errs = append(errs, err)
	}
	removeLogLinks(l)
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		if err := sh("ip", "link", "del", bridgeName); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range cgroupHierarchies() {
		if err := removeCgroupTree(filepath.Join(h, cgroupRoot)); err != nil {
			errs = append(errs, err)
		}
	}
	if err := restoreSysctls(l); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func criTeardown(l layout) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+l.containerdSock(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return err
	}
	var errs []error
	for _, sb := range list.Items {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("stop %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("remove %s/%s: %w", sb.Metadata.GetNamespace(), sb.Metadata.GetName(), err))
		}
	}
	logf("removed %d pod sandboxes", len(list.Items))
	return errors.Join(errs...)
}

func criTeardownWithTemporaryContainerd(l layout) error {
	cfg := l.path("containerd", "config.toml")
	if _, err := os.Stat(cfg); err != nil {
		return nil
	}
	logf("starting containerd on the previous run's state to remove its pods")
	cmd := exec.Command("containerd", "--config", cfg)
	logFile, err := os.OpenFile(l.logFile("containerd-cleanup"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err == nil {
		cmd.Stdout, cmd.Stderr = logFile, logFile
		defer logFile.Close()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("ctr", "--address", l.containerdSock(), "version").Run() != nil {
		if time.Now().After(deadline) {
			return errors.New("temporary containerd did not come up")
		}
		time.Sleep(200 * time.Millisecond)
	}
	return criTeardown(l)
}

// killLeftovers kills the containerd shims serving our socket and every
// process in our pods' cgroups (both outlive a killed containerd).
func killLeftovers(l layout) {
	sock := []byte(l.containerdSock())
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(cmdline, []byte("containerd-shim")) || !bytes.Contains(cmdline, sock) {
			continue
		}
		if pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p))); err == nil {
			logf("killing leftover shim %d", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, cgroupRoot), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			raw, _ := os.ReadFile(path)
			for _, f := range strings.Fields(string(raw)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
	}
}

// sweepIPTables removes the node's rules in one iptables-restore transaction
// per table (iptables.SweepScript says which).
func sweepIPTables(tool string) error {
	if _, err := exec.LookPath(tool + "-save"); err != nil {
		return nil
	}
	out, err := exec.Command(tool + "-save").Output()
	if err != nil {
		return fmt.Errorf("%s-save: %w", tool, err)
	}
	script := iptables.SweepScript(string(out), cniNetworkName)
	if script == "" {
		return nil
	}
	cmd := exec.Command(tool+"-restore", "--noflush")
	cmd.Stdin = strings.NewReader(script)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s-restore: %v: %s", tool, err, b)
	}
	return nil
}

// unmountUnder unmounts every mount point at or below dir, deepest first.
func unmountUnder(dir string) error {
	for range 3 {
		raw, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return err
		}
		var points []string
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 {
				continue
			}
			p := unescapeMount(f[4])
			if p == dir || strings.HasPrefix(p, dir+"/") {
				points = append(points, p)
			}
		}
		if len(points) == 0 {
			return nil
		}
		sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
		for _, p := range points {
			if err := syscall.Unmount(p, 0); err != nil {
				_ = syscall.Unmount(p, syscall.MNT_DETACH)
			}
		}
	}
	return nil
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// removeLogLinks deletes the kubelet's /var/log/containers links into our pod logs.
func removeLogLinks(l layout) {
	links, _ := filepath.Glob("/var/log/containers/*.log")
	for _, link := range links {
		if target, err := os.Readlink(link); err == nil && strings.HasPrefix(target, l.podLogs()+"/") {
			_ = os.Remove(link)
		}
	}
}

// removeCgroupTree removes a cgroup v1 directory and its children, deepest first.
func removeCgroupTree(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return filepath.SkipDir
			}
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- {
		var rmErr error
		for range 20 { // a killed task leaves its cgroup a moment later
			if rmErr = syscall.Rmdir(dirs[i]); rmErr == nil || errors.Is(rmErr, syscall.ENOENT) {
				rmErr = nil
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if rmErr != nil {
			errs = append(errs, fmt.Errorf("rmdir %s: %w", dirs[i], rmErr))
		}
	}
	return errors.Join(errs...)
}

func deleteNodeObject(l layout) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.path("admin.kubeconfig"))
	if err != nil {
		return
	}
	cfg.Timeout = 3 * time.Second
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = client.CoreV1().Nodes().Delete(ctx, nodeName, metav1.DeleteOptions{})
}

// deleteAPIService removes v1beta1.metrics.k8s.io: while it exists the API
// server keeps probing metrics-server's ClusterIP, which only this node's
// kube-proxy serves (and only this node's egress guard keeps on the host).
func deleteAPIService(l layout) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.path("admin.kubeconfig"))
	if err != nil {
		return
	}
	cfg.Timeout = 3 * time.Second
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	gvr := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	_ = dyn.Resource(gvr).Delete(ctx, "v1beta1.metrics.k8s.io", metav1.DeleteOptions{})
}
