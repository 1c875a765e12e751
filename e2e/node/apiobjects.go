package main

import (
	"context"
	"encoding/base64"
	"os"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// applyClusterObjects registers what the cluster needs to use the node:
//   - RBAC: the default policy's system:node role for the system:nodes group
//     (the API server authorizes with RBAC only, no Node authorizer);
//   - Service kube-system/kube-dns on 10.0.0.10 and metrics-server, both
//     without selector: CoreDNS and metrics-server run as processes of the
//     node on nodeIP (the API server listens on loopback only, which pods
//     cannot reach, so they cannot run as pods), and their Endpoints and
//     EndpointSlices name that address;
//   - APIService v1beta1.metrics.k8s.io, verified with the cluster's CA.
//
// Existing objects are left as they are: their content never changes.
func applyClusterObjects(ctx context.Context, cfg *rest.Config, client kubernetes.Interface, l layout, metricsServer bool) error {
	ignoreExists := func(err error) error {
		if apierrors.IsAlreadyExists(err) {
			return nil
		}
		return err
	}
	_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "pynomaly-node:system:nodes"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:node"},
		Subjects:   []rbacv1.Subject{{APIGroup: "rbac.authorization.k8s.io", Kind: "Group", Name: "system:nodes"}},
	}, metav1.CreateOptions{})
	if err := ignoreExists(err); err != nil {
		return err
	}
	udp, tcp := corev1.ProtocolUDP, corev1.ProtocolTCP
	services := []struct {
		name, clusterIP string
		ports           []corev1.ServicePort
	}{
		{"kube-dns", clusterDNSIP, []corev1.ServicePort{
			{Name: "dns", Protocol: udp, Port: 53, TargetPort: intstr.FromInt32(53)},
			{Name: "dns-tcp", Protocol: tcp, Port: 53, TargetPort: intstr.FromInt32(53)},
		}},
		{"metrics-server", "", []corev1.ServicePort{
			{Name: "https", Protocol: tcp, Port: 443, TargetPort: intstr.FromInt32(metricsPort)},
		}},
	}
	ready := true
	for _, s := range services {
		labels := map[string]string{"app.kubernetes.io/managed-by": managedBy}
		// Look first: a second create with a fixed clusterIP fails on the IP
		// ("already allocated"), not with AlreadyExists (a node started again
		// on a running control plane).
		_, err := client.CoreV1().Services("kube-system").Get(ctx, s.name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = client.CoreV1().Services("kube-system").Create(ctx, &corev1.Service{
				ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: labels},
				Spec:       corev1.ServiceSpec{ClusterIP: s.clusterIP, Ports: s.ports},
			}, metav1.CreateOptions{})
		}
		if err := ignoreExists(err); err != nil {
			return err
		}
		var epPorts []corev1.EndpointPort
		var slicePorts []discoveryv1.EndpointPort
		for _, p := range s.ports {
			epPorts = append(epPorts, corev1.EndpointPort{Name: p.Name, Port: p.TargetPort.IntVal, Protocol: p.Protocol})
			slicePorts = append(slicePorts, discoveryv1.EndpointPort{Name: &p.Name, Port: &p.TargetPort.IntVal, Protocol: &p.Protocol})
		}
		_, err = client.CoreV1().Endpoints("kube-system").Create(ctx, &corev1.Endpoints{ //nolint:staticcheck // the aggregator still reads v1 Endpoints
			ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: labels},
			Subsets:    []corev1.EndpointSubset{{Addresses: []corev1.EndpointAddress{{IP: nodeIP}}, Ports: epPorts}},
		}, metav1.CreateOptions{})
		if err := ignoreExists(err); err != nil {
			return err
		}
		node := nodeName
		_, err = client.DiscoveryV1().EndpointSlices("kube-system").Create(ctx, &discoveryv1.EndpointSlice{
			ObjectMeta: metav1.ObjectMeta{Name: s.name + "-node", Labels: map[string]string{
				discoveryv1.LabelServiceName: s.name, discoveryv1.LabelManagedBy: managedBy,
			}},
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses: []string{nodeIP}, NodeName: &node,
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
			}},
			Ports: slicePorts,
		}, metav1.CreateOptions{})
		if err := ignoreExists(err); err != nil {
			return err
		}
	}
	if !metricsServer {
		return nil // an APIService without its server would break discovery (and namespace deletion)
	}
	caPEM, err := os.ReadFile(l.path("pki", "ca.crt"))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	apiService := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": "v1beta1.metrics.k8s.io", "labels": map[string]any{"app.kubernetes.io/managed-by": managedBy}},
		"spec": map[string]any{
			"group": "metrics.k8s.io", "version": "v1beta1",
			"service":              map[string]any{"namespace": "kube-system", "name": "metrics-server", "port": int64(443)},
			"caBundle":             base64.StdEncoding.EncodeToString(caPEM),
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
		},
	}}
	gvr := schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}
	_, err = dyn.Resource(gvr).Create(ctx, apiService, metav1.CreateOptions{})
	return ignoreExists(err)
}
