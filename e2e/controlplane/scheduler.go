package main

import (
	"os"
	"os/exec"
	"strconv"

	schedulerapp "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

// schedulerCommand re-executes this binary as `controlplane scheduler`.
// The serving port exists only so readiness can be probed on /healthz.
func schedulerCommand(st *state, clients clientTuning) *exec.Cmd {
	self, _ := os.Executable()
	args := append([]string{"scheduler",
		"--kubeconfig=" + st.kubeconfigPath(),
		"--authentication-kubeconfig=" + st.kubeconfigPath(),
		"--authorization-kubeconfig=" + st.kubeconfigPath(),
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(st.ports.Scheduler),
		"--v=0",
	}, clients.qpsArgs()...)
	return exec.Command(self, args...)
}

// runScheduler is the `scheduler` subcommand: the stock kube-scheduler.
func runScheduler(args []string) error {
	cmd := schedulerapp.NewSchedulerCommand()
	cmd.SetArgs(args)
	return cmd.Execute()
}
