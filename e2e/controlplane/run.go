package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pynomaly/pynomaly-operator/e2e/clusterkit"
	"go.etcd.io/etcd/server/v3/embed"
	"k8s.io/component-base/version"
)

// options are the flags of `controlplane run`.
type options struct {
	dir        string
	kwokBinary string
	kwokConfig string
	nodes      string
	timeout    time.Duration
	clients    clientTuning
}

func parseOptions(args []string) (options, error) {
	self, err := os.Executable()
	if err != nil {
		return options{}, err
	}
	binDir := filepath.Dir(self)
	o := options{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.StringVar(&o.dir, "dir", ".cluster", "state directory: ports, certificates, etcd data, kubeconfig, logs")
	fs.StringVar(&o.kwokBinary, "kwok", filepath.Join(binDir, "kwok"), "path of the kwok binary")
	fs.StringVar(&o.kwokConfig, "kwok-config", filepath.Join(binDir, "kwok-stages.yaml"), "KWOK stages configuration")
	fs.StringVar(&o.nodes, "nodes", defaultNodes, "fake nodes as TYPE=COUNT,... (types from the built-in catalogue)")
	fs.DurationVar(&o.timeout, "ready-timeout", 120*time.Second, "give up when not ready within this time")
	fs.Float64Var(&o.clients.qps, "controller-qps", defaultControllerQPS, "client QPS of kube-controller-manager (each controller) and kube-scheduler; burst is twice this")
	fs.DurationVar(&o.clients.hpaSyncPeriod, "hpa-sync-period", 5*time.Second, "HPA controller sync period (upstream default 15s)")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	abs, err := filepath.Abs(o.dir)
	if err != nil {
		return options{}, err
	}
	o.dir = abs
	return o, nil
}

// run starts every component in dependency order, prints READY, and then
// waits for SIGTERM/SIGINT or for a component to fail.
func run(args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	start := time.Now()
	nodes, err := parseNodes(o.nodes)
	if err != nil {
		return err
	}
	st, err := openState(o.dir)
	if err != nil {
		return err
	}
	if err := writePIDFile(st, nil); err != nil {
		return err
	}
	if err := ensurePKI(st); err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	if err := writeKubeconfig(st); err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}

	// Our own signal handling: the API server installs the process's one
	// shutdown handler (it cancels the API server's context), and Go lets
	// more than one channel receive the same signal. stopping is cancelled
	// on SIGTERM/SIGINT, which also aborts the start-up waits below.
	stopping, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	failed := make(chan error, 8)
	etcd, err := startEtcd(st)
	if err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	defer closeEtcd(etcd)
	go func() {
		if err := <-etcd.Err(); err != nil {
			failed <- fmt.Errorf("etcd: %w", err)
		}
	}()
	logf("etcd serving on %s (%s)", st.etcdURL(), since(start))

	apiDone := startAPIServer(st, failed)
	ctx, cancel := context.WithTimeout(stopping, o.timeout)
	defer cancel()
	client, err := waitAPIServer(ctx, st, failed)
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	logf("kube-apiserver ready on %s (%s)", st.apiserverURL(), since(start))

	startControllerManager(st, o.clients, failed)

	children := &clusterkit.Children{Failed: failed, Logf: logf}
	defer children.Stop(childGrace)
	if err := children.Start("scheduler", st.logFile("scheduler"), schedulerCommand(st, o.clients)); err != nil {
		return err
	}
	if err := children.Start("kwok", st.logFile("kwok"), kwokCommand(st, o.kwokBinary, o.kwokConfig)); err != nil {
		return err
	}
	if err := writePIDFile(st, children); err != nil {
		return err
	}

	bg, stopBackground := context.WithCancel(context.Background())
	defer stopBackground()
	if err := ensureDefaultStorageClass(ctx, client); err != nil {
		return fmt.Errorf("storage class: %w", err)
	}
	go runFakeProvisioner(bg, client, filepath.Join(st.dir, "pv"))
	if err := ensureNodes(ctx, client, nodes); err != nil {
		return fmt.Errorf("nodes: %w", err)
	}

	if err := waitClusterReady(ctx, st, client, nodes, failed); err != nil {
		return err
	}
	fmt.Printf("READY %s (%.1fs)\n", st.kubeconfigPath(), time.Since(start).Seconds())
	_ = os.Stdout.Sync()

	select {
	case <-stopping.Done():
		logf("received a stop signal, shutting down")
	case err := <-failed:
		logf("component failed: %v", err)
		return err
	}
	stopBackground()
	children.Stop(childGrace)
	// The API server saw the same signal and is draining; give it a moment
	// so it does not log storage errors before etcd closes (deferred).
	select {
	case <-apiDone:
	case <-time.After(time.Second):
	}
	return nil
}

// closeEtcd closes etcd, bounded: its graceful gRPC stop waits for the API
// server's watch streams, and the data is already written (no fsync, but in
// the files), so a prompt exit loses nothing a restart on the same --dir needs.
func closeEtcd(e *embed.Etcd) {
	closed := make(chan struct{})
	go func() { e.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(time.Second):
		logf("etcd still closing after 1s; exiting anyway")
	}
}

func printVersion() error {
	fmt.Println(version.Get().GitVersion)
	return nil
}

// childGrace is how long the scheduler and KWOK get after SIGTERM.
const childGrace = 3 * time.Second

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }

// logf writes progress to stderr; stdout carries only the READY line.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "controlplane: "+format+"\n", args...)
}
