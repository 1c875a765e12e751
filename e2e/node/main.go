// Command node runs the local cluster's real node beside the KWOK ones (see
// e2e/node/README.md): one binary holding the kubelet and kube-proxy of the
// control plane's Kubernetes version, and the supervisor that configures and
// starts containerd, both of them, CoreDNS and metrics-server, registers what
// the cluster needs to use them, and removes everything again on stop.
//
// Usage:
//
//	node run --dir .cluster/node --cluster-dir .cluster   # start; prints READY
//	node cleanup --dir .cluster/node                      # undo what a dead run left
//	node kubelet [kubelet flags]                          # internal: the kubelet child
//	node kube-proxy [kube-proxy flags]                    # internal: the kube-proxy child
//	node image --out X.tar --name REF --entrypoint /b FILE=/b ...   # write an OCI archive
package main

import (
	"context"
	"fmt"
	"os"

	proxyapp "k8s.io/kubernetes/cmd/kube-proxy/app"
	kubeletapp "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: node run|cleanup|image|kubelet|kube-proxy ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "kubelet":
		cmd := kubeletapp.NewKubeletCommand(context.Background())
		cmd.SetArgs(os.Args[2:])
		err = cmd.Execute()
	case "kube-proxy":
		cmd := proxyapp.NewProxyCommand()
		cmd.SetArgs(os.Args[2:])
		err = cmd.Execute()
	case "run":
		err = run(os.Args[2:])
	case "cleanup":
		err = cleanupCommand(os.Args[2:])
	case "image":
		err = imageCommand(os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "node:", err)
		os.Exit(1)
	}
}
