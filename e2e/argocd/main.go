// Command argocd is the part of Argo CD the GitOps tests run: the application controller and
// the repo server, in one binary that dispatches on the name it was started under, as Argo
// CD's own cmd/main.go does (`e2e/argocd.sh build` links both names to it). The API server,
// UI, Dex, notifications and ApplicationSet controller are left out: the tests drive Argo CD
// through Application objects and read their status, so they are not needed, and leaving
// them out keeps the cold build shorter.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	gitaskpass "github.com/argoproj/argo-cd/v3/cmd/argocd-git-ask-pass/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	// Same as upstream: klog (client-go) logs through Argo CD's configured logger.
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	name := filepath.Base(os.Args[0])
	if env := os.Getenv("ARGOCD_BINARY_NAME"); env != "" {
		name = env
	}
	var command *cobra.Command
	switch name {
	case "argocd-application-controller":
		command = appcontroller.NewCommand()
	case "argocd-repo-server":
		command = reposerver.NewCommand()
	case "argocd-git-ask-pass":
		// The repo server points GIT_ASKPASS at this name for repositories with credentials.
		command = gitaskpass.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "argocd: started as %q; run it as argocd-application-controller, argocd-repo-server or argocd-git-ask-pass (a link or ARGOCD_BINARY_NAME)\n", name)
		os.Exit(2)
	}
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
