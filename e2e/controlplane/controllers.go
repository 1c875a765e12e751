package main

import (
	"fmt"
	"strings"

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

func controllerManagerArgs(st *state) []string {
	return []string{
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
		"--horizontal-pod-autoscaler-sync-period=5s",
		"--concurrent-gc-syncs=5",
	}
}

// startControllerManager runs kube-controller-manager in-process after the
// API server is ready (it exits the process on fatal startup errors).
// Logging and feature gates were applied by the API server: they are
// process-global, so the second component must tolerate re-application.
func startControllerManager(st *state, failed chan<- error) {
	logsapi.ReapplyHandling = logsapi.ReapplyHandlingIgnoreUnchanged
	cmd := kcmapp.NewControllerManagerCommand()
	cmd.SetArgs(controllerManagerArgs(st))
	go func() {
		if err := cmd.Execute(); err != nil {
			failed <- fmt.Errorf("kube-controller-manager: %w", err)
		} else {
			failed <- fmt.Errorf("kube-controller-manager returned")
		}
	}()
}
