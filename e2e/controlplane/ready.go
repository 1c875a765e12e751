package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// waitClusterReady returns once every component does its job, not merely
// listens: the controller manager has created the default ServiceAccount
// and root CA ConfigMap (pods can be admitted), the scheduler answers
// /healthz, and KWOK reports every fake node Ready.
func waitClusterReady(ctx context.Context, st *state, client kubernetes.Interface, nodes []nodeSpec, failed <-chan error) error {
	checks := []struct {
		name string
		ok   func(context.Context) error
	}{
		{"kube-controller-manager", func(ctx context.Context) error {
			if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
				return err
			}
			_, err := client.CoreV1().ConfigMaps("default").Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
			return err
		}},
		{"kube-scheduler", func(ctx context.Context) error { return schedulerHealthy(ctx, st) }},
		{"kwok nodes", func(ctx context.Context) error { return nodesReady(ctx, client, nodes) }},
	}
	for _, c := range checks {
		var last error
		for {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			last = c.ok(cctx)
			cancel()
			if last == nil {
				break
			}
			select {
			case err := <-failed:
				return err
			case <-ctx.Done():
				return fmt.Errorf("%s not ready: %v", c.name, last)
			case <-time.After(100 * time.Millisecond):
			}
		}
		logf("%s ready", c.name)
	}
	return nil
}

func schedulerHealthy(ctx context.Context, st *state) error {
	// The scheduler serves a self-signed certificate made at start-up;
	// this is a loopback liveness probe, not a trust decision.
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/healthz", st.ports.Scheduler), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s", resp.Status)
	}
	return nil
}

func nodesReady(ctx context.Context, client kubernetes.Interface, nodes []nodeSpec) error {
	for _, n := range nodes {
		node, err := client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ready := false
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				ready = true
			}
		}
		if !ready {
			return fmt.Errorf("node %s not Ready", n.name)
		}
	}
	return nil
}
