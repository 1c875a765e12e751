// Package iptables holds the real node's teardown plan for iptables: which
// chains and rules are the node's, from iptables-save output, as a pure
// function so it is tested without root or a node.
package iptables

import (
	"fmt"
	"strings"
)

// SweepScript turns iptables-save output into the iptables-restore script
// that deletes the node's chains and every rule jumping to one:
//   - KUBE-* (kube-proxy, kubelet) and PYNODE-* (guardEgress);
//   - of the CNI-* chains, only those of our CNI network: a portmap per-pod
//     chain (CNI-DN-*) is ours when the rule jumping to it carries the
//     plugin's comment `name: "<network>"`; the plugin's shared
//     CNI-HOSTPORT-* chains go only when no other network's CNI-DN-* chain is
//     left. Another CNI user's chains on the same host (podman's CNI-<hash>,
//     CNI-FORWARD, CNI-ADMIN, its port mappings) are left alone.
func SweepScript(save, network string) string {
	marker := fmt.Sprintf(`name: \"%s\"`, network)
	type table struct {
		name   string
		chains []string
		rules  []string
	}
	var tables []*table
	var cur *table
	for _, line := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &table{name: strings.TrimPrefix(line, "*")}
			tables = append(tables, cur)
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 0 {
				cur.chains = append(cur.chains, f[0])
			}
		case strings.HasPrefix(line, "-A "):
			cur.rules = append(cur.rules, line)
		}
	}
	target := func(rule string) string {
		f := strings.Fields(rule)
		for i := 2; i+1 < len(f); i++ {
			if f[i] == "-j" || f[i] == "-g" {
				return f[i+1]
			}
		}
		return ""
	}
	var script strings.Builder
	for _, t := range tables {
		ours := map[string]bool{}
		for _, c := range t.chains {
			if strings.HasPrefix(c, "KUBE-") || strings.HasPrefix(c, "PYNODE-") {
				ours[c] = true
			}
		}
		for _, r := range t.rules {
			if j := target(r); strings.HasPrefix(j, "CNI-DN-") && strings.Contains(r, marker) {
				ours[j] = true
			}
		}
		othersPortmap := false
		for _, c := range t.chains {
			if strings.HasPrefix(c, "CNI-DN-") && !ours[c] {
				othersPortmap = true
			}
		}
		if !othersPortmap {
			for _, c := range t.chains {
				if strings.HasPrefix(c, "CNI-HOSTPORT-") {
					ours[c] = true
				}
			}
		}
		var dels, drop []string
		for _, r := range t.rules {
			chain := strings.Fields(r)[1]
			if ours[chain] {
				continue // flushed with its chain
			}
			if ours[target(r)] {
				dels = append(dels, "-D"+strings.TrimPrefix(r, "-A"))
			}
		}
		for _, c := range t.chains {
			if ours[c] {
				drop = append(drop, c)
			}
		}
		if len(dels) == 0 && len(drop) == 0 {
			continue
		}
		fmt.Fprintf(&script, "*%s\n", t.name)
		for _, d := range dels {
			script.WriteString(d + "\n")
		}
		for _, c := range drop {
			fmt.Fprintf(&script, "-F %s\n", c)
		}
		for _, c := range drop {
			fmt.Fprintf(&script, "-X %s\n", c)
		}
		script.WriteString("COMMIT\n")
	}
	return script.String()
}
