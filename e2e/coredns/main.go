// Command coredns is the local cluster's DNS: CoreDNS built from its module
// with only the plugins the cluster needs (the upstream binary links every
// cloud provider's SDK; this keeps the build small). The Corefile the node
// writes uses exactly these: bind, ready, health, errors, log, cache and
// kubernetes (Services and pods of cluster.local from the API server).
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// Plugin order as in CoreDNS's plugin.cfg (it decides the chain order).
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes"}
}

func main() { coremain.Run() }
