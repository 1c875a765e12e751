package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// kwokAnnotation marks the Nodes that KWOK fakes; kwok is started with
// --manage-nodes-with-annotation-selector for exactly this pair.
const (
	kwokAnnotationKey   = "kwok.x-k8s.io/node"
	kwokAnnotationValue = "fake"
	defaultNodes        = "c5.2xlarge=3,c5.4xlarge=1,m5.large=2"
	region              = "us-east-1"
)

// zones the fake nodes are spread over, round-robin in creation order.
var zones = []string{"us-east-1a", "us-east-1b"}

// instanceType is the allocatable shape of one EC2 type.
type instanceType struct {
	cpu    string
	memory string
}

// catalogue holds the instance types the fake cluster can offer.
var catalogue = map[string]instanceType{
	"c5.large":   {cpu: "2", memory: "4Gi"},
	"c5.xlarge":  {cpu: "4", memory: "8Gi"},
	"c5.2xlarge": {cpu: "8", memory: "16Gi"},
	"c5.4xlarge": {cpu: "16", memory: "32Gi"},
	"m5.large":   {cpu: "2", memory: "8Gi"},
	"m5.xlarge":  {cpu: "4", memory: "16Gi"},
	"m5.2xlarge": {cpu: "8", memory: "32Gi"},
}

// nodeSpec is one fake node to create. Its InternalIP is a loopback address
// (127.0.10.N): the API server prefers InternalIP to reach kubelets (logs,
// exec, metrics-server's scrapes), and a fake node's address must never lead
// off this machine.
type nodeSpec struct {
	name, instanceType, zone, ip string
}

// parseNodes turns "c5.2xlarge=3,m5.large=2" into named nodes, assigning
// zones round-robin so every multi-node type spans both zones.
func parseNodes(spec string) ([]nodeSpec, error) {
	var out []nodeSpec
	for _, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		typ, countText, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("--nodes: %q is not TYPE=COUNT", part)
		}
		if _, known := catalogue[typ]; !known {
			return nil, fmt.Errorf("--nodes: unknown instance type %q (known: %s)", typ, knownTypes())
		}
		count, err := strconv.Atoi(countText)
		if err != nil || count < 0 {
			return nil, fmt.Errorf("--nodes: bad count in %q", part)
		}
		for i := range count {
			n := len(out)
			out = append(out, nodeSpec{
				name:         fmt.Sprintf("kwok-%s-%d", strings.ReplaceAll(typ, ".", "-"), i),
				instanceType: typ,
				zone:         zones[n%len(zones)],
				ip:           fmt.Sprintf("127.0.10.%d", n+10),
			})
		}
	}
	return out, nil
}

func knownTypes() string {
	var names []string
	for name := range catalogue {
		names = append(names, name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// Node builds the Node object for one fake node, labelled like a kubelet
// on EC2 would label it.
func Node(n nodeSpec) *corev1.Node {
	shape := catalogue[n.instanceType]
	resources := corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(shape.cpu),
		corev1.ResourceMemory:           resource.MustParse(shape.memory),
		corev1.ResourcePods:             resource.MustParse("110"),
		corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: n.name,
			Labels: map[string]string{
				"kubernetes.io/hostname":           n.name,
				"kubernetes.io/os":                 "linux",
				"kubernetes.io/arch":               "amd64",
				"node.kubernetes.io/instance-type": n.instanceType,
				"topology.kubernetes.io/zone":      n.zone,
				"topology.kubernetes.io/region":    region,
				"type":                             "kwok",
			},
			Annotations: map[string]string{kwokAnnotationKey: kwokAnnotationValue},
		},
		Status: corev1.NodeStatus{
			Capacity:    resources,
			Allocatable: resources,
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: n.ip},
				{Type: corev1.NodeHostName, Address: n.name},
			},
		},
	}
}

// ensureNodes creates the fake nodes that do not exist yet. On a restart
// they are already in etcd and are left as they are.
func ensureNodes(ctx context.Context, client kubernetes.Interface, nodes []nodeSpec) error {
	for _, n := range nodes {
		want := Node(n)
		got, err := client.CoreV1().Nodes().Create(ctx, want, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("create %s: %w", n.name, err)
		}
		// Status is not always kept on create; KWOK's node-initialize stage
		// copies capacity/allocatable from the status it finds.
		if got.Status.Allocatable.Cpu().IsZero() {
			got.Status = want.Status
			if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, got, metav1.UpdateOptions{}); err != nil {
				return fmt.Errorf("status of %s: %w", n.name, err)
			}
		}
	}
	return nil
}
