// Command controlplane is the project's local Kubernetes control plane for tests
// and the demo: embedded etcd, kube-apiserver and kube-controller-manager in one
// process, kube-scheduler and KWOK as child processes, fake Nodes created from
// a fixed catalogue, and a fake PersistentVolume provisioner.
//
// Usage:
//
//	controlplane run --dir .cluster          # start; prints READY <kubeconfig>
//	controlplane scheduler --kubeconfig=...  # internal: the scheduler child
//
// Everything binds to 127.0.0.1. The data dir keeps ports, certificates and
// the etcd data, so stopping the process and running it again with the same
// --dir brings the same API server back on the same address with the same
// state: that is the "API server goes away and comes back" test hook.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: controlplane run --dir DIR | controlplane scheduler [kube-scheduler flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = run(os.Args[2:])
	case "scheduler":
		// kube-scheduler installs its own signal handler and panics when one
		// already exists, so it can only live in a process of its own.
		err = runScheduler(os.Args[2:])
	case "version":
		err = printVersion()
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "controlplane:", err)
		os.Exit(1)
	}
}
