package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/pynomaly/pynomaly-operator/e2e/clusterkit"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

type options struct {
	dir, clusterDir, binDir string
	images                  []string
	timeout                 time.Duration
	metricsServer           bool
}

func parseOptions(args []string) (options, error) {
	self, err := os.Executable()
	if err != nil {
		return options{}, err
	}
	o := options{}
	var images string
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", ".cluster/node", "node state directory (configs, containerd, kubelet, logs)")
	fs.StringVar(&o.clusterDir, "cluster-dir", ".cluster", "the control plane's state directory (kubeconfig, pki/ca.*)")
	fs.StringVar(&o.binDir, "bin-dir", filepath.Dir(self), "where coredns, metrics-server and pause.tar are")
	fs.StringVar(&images, "images", "", "more OCI archives to import into containerd, comma separated")
	fs.DurationVar(&o.timeout, "ready-timeout", 180*time.Second, "give up when not ready within this time")
	fs.BoolVar(&o.metricsServer, "metrics-server", true, "run metrics-server and register metrics.k8s.io (false: no resource metrics, no HPA on CPU)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	for _, p := range []*string{&o.dir, &o.clusterDir, &o.binDir} {
		abs, err := filepath.Abs(*p)
		if err != nil {
			return options{}, err
		}
		*p = abs
	}
	o.images = append(o.images, filepath.Join(o.binDir, "pause.tar"))
	for _, img := range strings.Split(images, ",") {
		if img = strings.TrimSpace(img); img != "" {
			o.images = append(o.images, img)
		}
	}
	return o, nil
}

func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("the real node needs root (containerd, runc, iptables, mounts)")
	}
	var missing []string
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "iptables-save", "iptables-restore", "ip", "conntrack"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if _, err := os.Stat("/usr/lib/cni/" + p); err != nil {
			missing = append(missing, "/usr/lib/cni/"+p)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing %s: run scripts/node-deps.sh (make node-deps)", strings.Join(missing, ", "))
	}
	return nil
}

// run brings the node up, prints READY, waits for SIGTERM/SIGINT or a
// failing child, and always tears everything down before returning.
func run(args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	if err := preflight(); err != nil {
		return err
	}
	lock, err := lockMachine()
	if err != nil {
		return err
	}
	defer lock.Close()
	start := time.Now()
	l := layout{dir: o.dir}
	// A previous run that was killed leaves what only cleanup removes.
	if err := cleanup(l, false); err != nil {
		logf("cleanup of a previous run: %v", err)
	}
	stopping, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithTimeout(stopping, o.timeout)
	defer cancel()

	failed := make(chan error, 8)
	children := &clusterkit.Children{Failed: failed, Logf: logf}
	err = up(ctx, o, l, children, failed, start)
	if err == nil {
		fmt.Printf("READY %s (%.1fs)\n", nodeName, time.Since(start).Seconds())
		_ = os.Stdout.Sync()
		select {
		case <-stopping.Done():
			logf("received a stop signal, shutting down")
		case err = <-failed:
			logf("component failed: %v", err)
		}
	}
	t := time.Now()
	teardown(l, o, children)
	logf("stopped and cleaned up in %s", since(t))
	return err
}

func up(ctx context.Context, o options, l layout, children *clusterkit.Children, failed chan error, start time.Time) error {
	for _, d := range []string{"containerd", "cni/net.d", "cni/ipam", "pki", "logs", "kubelet", "pod-logs", "volume-plugins", "metrics-server"} {
		if err := os.MkdirAll(l.path(d), 0o700); err != nil {
			return err
		}
	}
	if err := writeCredentials(l, o.clusterDir); err != nil {
		return fmt.Errorf("credentials: %w", err)
	}
	ports, err := clusterkit.FreePorts(6)
	if err != nil {
		return err
	}
	kubeletHealthz, proxyHealthz, proxyMetrics, dnsHealth, dnsReady := ports[0], ports[1], ports[2], ports[3], ports[4]
	files := map[string]string{
		"containerd/config.toml":              containerdConfig(l),
		"cni/net.d/10-pynomaly-node.conflist": cniConfig(l),
		"kubelet.yaml":                        kubeletConfig(l, kubeletHealthz),
		"kube-proxy.yaml":                     proxyConfig(l, proxyHealthz, proxyMetrics),
		"Corefile":                            corefile(l, dnsHealth, dnsReady),
	}
	for name, content := range files {
		if err := os.WriteFile(l.path(name), []byte(content), 0o600); err != nil {
			return err
		}
	}
	if err := hostSetup(l); err != nil {
		return fmt.Errorf("host network/cgroups: %w", err)
	}
	logf("bridge %s %s, cgroup root %s (%s)", bridgeName, nodeIPCIDR, cgroupRoot, since(start))

	if err := children.Start("containerd", l.logFile("containerd"),
		exec.Command("containerd", "--config", l.path("containerd", "config.toml"))); err != nil {
		return err
	}
	if err := waitFor(ctx, "containerd", failed, func() error {
		return exec.Command("ctr", "--address", l.containerdSock(), "version").Run()
	}); err != nil {
		return err
	}
	for _, img := range o.images {
		out, err := exec.Command("ctr", "--address", l.containerdSock(), "-n", "k8s.io", "images", "import", img).CombinedOutput()
		if err != nil {
			return fmt.Errorf("import %s: %v: %s", img, err, out)
		}
	}
	logf("containerd up, %d images imported (%s)", len(o.images), since(start))

	cfg, err := clientcmd.BuildConfigFromFlags("", l.path("admin.kubeconfig"))
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if err := applyClusterObjects(ctx, cfg, client, l, o.metricsServer); err != nil {
		return fmt.Errorf("cluster objects: %w", err)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	starts := []struct {
		name string
		cmd  *exec.Cmd
	}{
		{"kubelet", exec.Command(self, "kubelet",
			"--config="+l.path("kubelet.yaml"),
			"--kubeconfig="+l.path("kubelet.kubeconfig"),
			"--root-dir="+l.kubeletRoot(),
			"--cert-dir="+l.path("kubelet-pki"),
			"--hostname-override="+nodeName,
			"--node-ip="+nodeIP,
			"--node-labels="+nodeLabels(),
			"--v=1")},
		{"kube-proxy", exec.Command(self, "kube-proxy", "--config="+l.path("kube-proxy.yaml"), "--v=1")},
		{"coredns", exec.Command(filepath.Join(o.binDir, "coredns"), "-conf", l.path("Corefile"))},
		{"metrics-server", exec.Command(filepath.Join(o.binDir, "metrics-server"),
			"--kubeconfig="+l.path("admin.kubeconfig"),
			"--authentication-kubeconfig="+l.path("admin.kubeconfig"),
			"--authorization-kubeconfig="+l.path("admin.kubeconfig"),
			"--bind-address="+nodeIP,
			"--secure-port="+strconv.Itoa(metricsPort),
			"--tls-cert-file="+l.path("pki", "metrics-server.crt"),
			"--tls-private-key-file="+l.path("pki", "metrics-server.key"),
			"--cert-dir="+l.path("metrics-server"),
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-use-node-status-port",
			"--kubelet-certificate-authority=",
			"--kubelet-insecure-tls", // the kubelet's serving certificate is self-signed
			"--node-selector="+realNodeLabel+"=true",
			"--kubelet-request-timeout=5s", // must be below the resolution
			"--metric-resolution=10s")},
	}
	if !o.metricsServer {
		starts = starts[:len(starts)-1] // metrics-server is last
	}
	for _, s := range starts {
		if err := children.Start(s.name, l.logFile(s.name), s.cmd); err != nil {
			return err
		}
	}
	if err := writePIDs(l, children); err != nil {
		return err
	}

	if err := waitFor(ctx, "node Ready", failed, func() error { return nodeReady(ctx, client) }); err != nil {
		return err
	}
	logf("node %s Ready (%s)", nodeName, since(start))
	for _, h := range []struct{ what, url string }{
		{"kube-proxy", fmt.Sprintf("http://127.0.0.1:%d/healthz", proxyHealthz)},
		{"coredns", fmt.Sprintf("http://127.0.0.1:%d/ready", dnsReady)},
	} {
		if err := waitFor(ctx, h.what, failed, func() error { return httpOK(h.url) }); err != nil {
			return err
		}
	}
	if err := waitFor(ctx, "metrics.k8s.io available", failed, func() error {
		if !o.metricsServer {
			return nil
		}
		_, err := client.Discovery().RESTClient().Get().AbsPath("/apis/metrics.k8s.io/v1beta1").DoRaw(ctx)
		return err
	}); err != nil {
		return err
	}
	logf("kube-proxy, CoreDNS and metrics-server ready (%s)", since(start))
	return nil
}

func nodeReady(ctx context.Context, client kubernetes.Interface) error {
	n, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return err
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return errors.New("not Ready yet")
}

func httpOK(url string) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // local health endpoint
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}

// waitFor polls probe every 200 ms until it passes, a child fails or ctx ends.
func waitFor(ctx context.Context, what string, failed chan error, probe func() error) error {
	var last error
	for {
		if last = probe(); last == nil {
			return nil
		}
		select {
		case err := <-failed:
			failed <- err
			return fmt.Errorf("waiting for %s: %w", what, err)
		case <-ctx.Done():
			return fmt.Errorf("%s: not ready: %v", what, last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func writePIDs(l layout, children *clusterkit.Children) error {
	var b strings.Builder
	fmt.Fprintf(&b, "node %d\n", os.Getpid())
	for _, c := range children.List() {
		fmt.Fprintf(&b, "%s %d\n", c.Name, c.Cmd.Process.Pid)
	}
	return os.WriteFile(l.path("pids"), []byte(b.String()), 0o600)
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s node: "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}
