package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	logsapi "k8s.io/component-base/logs/api/v1"
	kcmapp "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

// controllers are the kube-controller-manager loops the operator's tests
// rely on. node-lifecycle is left out on purpose: KWOK nodes do not
// heartbeat, and nothing here should taint or evict them.
var controllers = []string{
	"deployment-controller",
	"replicaset-controller",
	"statefulset-controller",
	"daemonset-controller",
	"job-controller",
	"cronjob-controller",
	"ttl-after-finished-controller",
	"garbage-collector-controller",
	"pod-garbage-collector-controller",
	"horizontal-pod-autoscaler-controller",
	"disruption-controller",
	"namespace-controller",
	"resourcequota-controller",
	"serviceaccount-controller",
	"serviceaccount-token-controller",
	"root-ca-certificate-publisher-controller",
	"clusterrole-aggregation-controller",
	"endpoints-controller",
	"endpointslice-controller",
	// Storage: the binder completes the bind our fake provisioner starts;
	// the protection controllers remove the finalizers that admission adds,
	// or deleting a namespace with PVCs would hang.
	"persistentvolume-binder-controller",
	"persistentvolumeclaim-protection-controller",
	"persistentvolume-protection-controller",
}

// defaultControllerQPS is the client QPS of kube-controller-manager and
// kube-scheduler here (burst twice that). Upstream defaults are 20/30 for the
// controller manager (per controller: each has its own client) and 50/100
// for the scheduler: production limits that protect a shared API server from
// its controllers. In this single-user test control plane they were the
// bottleneck of large tests: for 1,000 Deployments the deployment and the
// ReplicaSet controller each send ~3,000 requests (1,000 ReplicaSet or Pod
// creations and their status updates), ~150 s at 20 requests/s before the
// last pod can be Ready. kwokctl lifts them for the same reason.
const defaultControllerQPS = 200

// clientTuning holds the `controlplane run` flags that pace the controllers.
type clientTuning struct {
	qps           float64
	hpaSyncPeriod time.Duration
}

func (c clientTuning) qpsArgs() []string {
	return []string{
		"--kube-api-qps=" + strconv.FormatFloat(c.qps, 'f', -1, 64),
		"--kube-api-burst=" + strconv.Itoa(int(2*c.qps)),
	}
}

func controllerManagerArgs(st *state, clients clientTuning) []string {
	return append([]string{
		"--kubeconfig=" + st.kubeconfigPath(),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--controllers=" + strings.Join(controllers, ","),
		// Needed by serviceaccount-token and root-ca-cert-publisher, so pods
		// that mount service-account tokens are admitted and work.
		"--service-account-private-key-file=" + st.pki("sa.key"),
		"--root-ca-file=" + st.pki("ca.crt"),
		"--cluster-name=pynomaly",
		// React in seconds, not the production quarter-minute, so tests stay short.
		// (`controlplane run --hpa-sync-period`; the operator benchmark uses the
		// production 15s, since without a metrics server every sync of every HPA
		// fails and posts an Event.)
		"--horizontal-pod-autoscaler-sync-period=" + clients.hpaSyncPeriod.String(),
		"--concurrent-gc-syncs=5",
		// Upstream: 5 each. Workers only wait on the API server here, so more of
		// them cost no CPU and let a burst of Deployments roll out in parallel.
		"--concurrent-deployment-syncs=10",
		"--concurrent-replicaset-syncs=10",
	}, clients.qpsArgs()...)
}

// startControllerManager runs kube-controller-manager in-process after the
// API server is ready (it exits the process on fatal startup errors).
// Logging and feature gates were applied by the API server: they are
// process-global, so the second component must tolerate re-application.
func startControllerManager(st *state, clients clientTuning, failed chan<- error) {
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	cmd := kcmapp.NewControllerManagerCommand()
	cmd.SetArgs(controllerManagerArgs(st, clients))
	go func() {
		if err := cmd.Execute(); err != nil {
			failed <- fmt.Errorf("kube-controller-manager: %w", err)
		} else {
			failed <- fmt.Errorf("kube-controller-manager returned")
		}
	}()
}
