// Package clusterkit holds what the local control plane (e2e/controlplane)
// and the real node (e2e/node) both need: supervised child processes that
// die with their parent, certificates issued from the cluster's CA, and free
// loopback ports. Standard library only, so neither program's module gains a
// dependency; both use it through a replace directive to ../clusterkit.
package clusterkit
