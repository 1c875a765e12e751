package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"k8s.io/client-go/kubernetes"
	apiserverapp "k8s.io/kubernetes/cmd/kube-apiserver/app"
)

// apiserverArgs is envtest's loopback flag set, plus what the issue needs:
// client-certificate auth, RBAC, service-account token signing and the
// default admission chain (which includes PodSecurity).
func apiserverArgs(st *state) []string {
	return []string{
		"--etcd-servers=" + st.etcdURL(),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1", // refuses to start without a default route otherwise
		"--secure-port=" + strconv.Itoa(st.ports.APIServer),
		"--cert-dir=" + st.pki(""),
		"--tls-cert-file=" + st.pki("apiserver.crt"),
		"--tls-private-key-file=" + st.pki("apiserver.key"),
		"--client-ca-file=" + st.pki("ca.crt"),
		"--authorization-mode=RBAC",
		// A /16: each AnomalyDetector has up to four ClusterIP Services, and a
		// /24 (254 addresses) stopped the 1,000-detector benchmark at 253.
		"--service-cluster-ip-range=10.0.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + st.pki("sa.pub"),
		"--service-account-signing-key-file=" + st.pki("sa.key"),
		"--allow-privileged=true",
		// That plugin taints every new Node not-ready until node-lifecycle
		// (not run here: fake nodes do not heartbeat) clears it.
		"--disable-admission-plugins=TaintNodesByCondition",
		// No kubelets report in, so nothing could keep the kubernetes
		// Service's endpoints current anyway.
		"--endpoint-reconciler-type=none",
		// The real node (e2e/node, make cluster REAL_NODE=1): logs, exec and
		// port-forward reach its kubelet by the node's InternalIP with the admin
		// client certificate (the kubelet authorizes it by webhook).
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--kubelet-client-certificate=" + st.pki("admin.crt"),
		"--kubelet-client-key=" + st.pki("admin.key"),
		// API aggregation (metrics-server's metrics.k8s.io on the real node):
		// the API server proxies with the front-proxy client certificate and
		// publishes the request-header CA in kube-system's
		// extension-apiserver-authentication ConfigMap.
		"--requestheader-client-ca-file=" + st.pki("ca.crt"),
		"--requestheader-allowed-names=front-proxy-client",
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + st.pki("front-proxy-client.crt"),
		"--proxy-client-key-file=" + st.pki("front-proxy-client.key"),
		"--profiling=false",
		"--shutdown-delay-duration=0s",
		"--v=0",
	}
}

// startAPIServer runs kube-apiserver through its cobra command (driving the
// command, not internal structs, keeps Kubernetes upgrades cheap). Its
// context comes from its own signal handler, so SIGTERM drains it.
func startAPIServer(st *state, failed chan<- error) <-chan struct{} {
	cmd := apiserverapp.NewAPIServerCommand()
	cmd.SetArgs(apiserverArgs(st))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := cmd.Execute(); err != nil {
			failed <- fmt.Errorf("kube-apiserver: %w", err)
		}
	}()
	return done
}

// waitAPIServer polls /readyz until every check passes.
func waitAPIServer(ctx context.Context, st *state, failed <-chan error) (kubernetes.Interface, error) {
	client, err := newClient(st)
	if err != nil {
		return nil, err
	}
	var last error
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, last = client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(rctx)
		cancel()
		if last == nil {
			return client, nil
		}
		select {
		case err := <-failed:
			return nil, err
		case <-ctx.Done():
			return nil, fmt.Errorf("not ready: %v", last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
