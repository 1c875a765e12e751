// Command pause is the local node's sandbox ("pause") container: it holds the
// pod's namespaces, reaps orphans when it is the pid namespace's init, and
// exits on SIGTERM/SIGINT. Built static (CGO_ENABLED=0) and imported into
// containerd under the sandbox_image name, because no image can be pulled here.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
