package main

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Fixed facts of the one real node. The addresses are private and exist only
// while the node runs: nodeIP is the address of our own bridge (the pods'
// gateway), so the kubelet, CoreDNS and metrics-server bind to an interface we
// create and remove, and nothing listens on the host's real addresses.
const (
	nodeName       = "real-c5-2xlarge-0"
	instanceType   = "c5.2xlarge"
	zone           = "us-east-1a"
	region         = "us-east-1"
	realNodeLabel  = "pynomaly.dev/real-node"
	bridgeName     = "pynode0"
	podCIDR        = "10.201.0.0/16"
	nodeIP         = "10.201.0.1"
	nodeIPCIDR     = nodeIP + "/16"
	clusterDNSIP   = "10.0.0.10" // in the control plane's --service-cluster-ip-range 10.0.0.0/16
	clusterDomain  = "cluster.local"
	cgroupRoot     = "/pynomaly-node"
	sandboxImage   = "pynomaly.local/pause:1"
	cniNetworkName = "pynomaly-node"
	kubeletPort    = 10250
	metricsPort    = 4443
	managedBy      = "pynomaly-node" // endpointslice.kubernetes.io/managed-by of our slices
)

// layout is the node's state directory.
type layout struct{ dir string }

func (l layout) path(parts ...string) string {
	return filepath.Join(append([]string{l.dir}, parts...)...)
}

func (l layout) containerdSock() string { return l.path("containerd", "containerd.sock") }
func (l layout) criEndpoint() string    { return "unix://" + l.containerdSock() }
func (l layout) logFile(name string) string {
	return l.path("logs", name+".log")
}
func (l layout) kubeletRoot() string { return l.path("kubelet") }
func (l layout) podLogs() string     { return l.path("pod-logs") }

// nodeLabels are the labels the kubelet registers with: the instance type
// makes the operator's default affinity select this node.
func nodeLabels() string {
	return strings.Join([]string{
		"node.kubernetes.io/instance-type=" + instanceType,
		"topology.kubernetes.io/zone=" + zone,
		"topology.kubernetes.io/region=" + region,
		realNodeLabel + "=true",
	}, ",")
}

func containerdConfig(l layout) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[plugins."io.containerd.internal.v1.opt"]
  path = %q

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # This machine withholds CAP_SYS_RESOURCE: lowering oom_score_adj fails and
  # runc aborts every sandbox unless containerd keeps the score it has.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not the host's /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %q
    max_conf_num = 1
`, l.path("containerd", "root"), l.path("containerd", "state"), l.containerdSock(),
		l.path("containerd", "opt"), sandboxImage, l.path("cni", "net.d"))
}

// cniConfig: one bridge (ours, pre-created with nodeIP), host-local
// addresses from podCIDR with their state under our dir, no masquerade (pods
// talk to each other, the node and Service IPs only), portmap for hostPort.
func cniConfig(l layout) string {
	return fmt.Sprintf(`{
  "cniVersion": "0.4.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q, "gateway": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`, cniNetworkName, bridgeName, podCIDR, nodeIP, l.path("cni", "ipam"))
}

func kubeletConfig(l layout, healthzPort int) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: %d
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: %d
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %q}
authorization:
  mode: Webhook
# cgroup v1 on this machine (kubelet 1.35 refuses it unless told), no systemd.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
failSwapOn: false
containerRuntimeEndpoint: %q
imageServiceEndpoint: %q
clusterDNS: [%s]
clusterDomain: %s
resolvConf: ""
podLogsDir: %q
volumePluginDir: %q
registerNode: true
maxPods: 110
serializeImagePulls: false
nodeStatusUpdateFrequency: 10s
# Images cannot be pulled again here: never collect them. The node shares the
# host's filesystem, so disk thresholds are absolute: 1%% of a large shared disk
# (2.5 GB of 250 GB) put the node under DiskPressure on a machine with 2 GB
# free, and the kubelet rejected every pod of the stack. The floor is what
# the kubelet keeps free for itself (logs, pod state); below it it evicts.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "100Mi", nodefs.available: "256Mi", imagefs.available: "256Mi", nodefs.inodesFree: "1%%"}
evictionPressureTransitionPeriod: 30s
shutdownGracePeriod: 0s
`, nodeIP, kubeletPort, healthzPort, l.path("pki", "ca.crt"), cgroupRoot,
		l.criEndpoint(), l.criEndpoint(), clusterDNSIP, clusterDomain, l.podLogs(),
		l.path("volume-plugins"))
}

func proxyConfig(l layout, healthzPort, metricsPort int) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: %s
bindAddress: %s
healthzBindAddress: 127.0.0.1:%d
metricsBindAddress: 127.0.0.1:%d
clusterCIDR: %s
detectLocalMode: ClusterCIDR
nodePortAddresses: [%s/32]
clientConnection:
  kubeconfig: %q
iptables:
  syncPeriod: 10s
  minSyncPeriod: 0s
  masqueradeAll: false
  localhostNodePorts: false
# 0: leave the host's conntrack sysctls as they are.
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
`, nodeName, nodeIP, healthzPort, metricsPort, podCIDR, nodeIP, l.path("kube-proxy.kubeconfig"))
}

func corefile(l layout, healthPort, readyPort int) string {
	return fmt.Sprintf(`.:53 {
    bind %s
    errors
    health 127.0.0.1:%d
    ready 127.0.0.1:%d
    kubernetes %s in-addr.arpa ip6.arpa {
        kubeconfig %s
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
`, nodeIP, healthPort, readyPort, clusterDomain, l.path("admin.kubeconfig"))
}
