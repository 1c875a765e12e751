package main

import (
	"os/exec"
)

// kwokCommand starts KWOK (built from its own Go module, so its Kubernetes
// pins do not clash with ours). KWOK does not schedule: it plays the
// kubelet for the annotated fake nodes, marks them Ready, and walks pods
// that the scheduler bound to them through Running/Ready (and deletion),
// following the stages in kwok-stages.yaml (e2e/kwok/stages.yaml, copied by
// e2e/cluster.sh build: KWOK's "fast" stages, with Job pods completing 1 s
// after Running).
func kwokCommand(st *state, binary, config string) *exec.Cmd {
	return exec.Command(binary,
		"--kubeconfig="+st.kubeconfigPath(),
		"--config="+config,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector="+kwokAnnotationKey+"="+kwokAnnotationValue,
		// Pod IPs; outside --service-cluster-ip-range and the node IPs.
		"--cidr=10.244.0.0/16",
		"--node-ip=127.0.10.1", // loopback: nothing sent to a fake node leaves the host
	)
}
