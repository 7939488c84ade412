// Command pause is the sandbox ("pause") container of korder's local cluster.
//
// containerd starts one per pod to hold the pod's namespaces; it only has to sleep
// until it is told to stop, and reap the zombies of a shared PID namespace. Built
// here, static, so the node needs no image from a registry.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		// Reap every exited child: as PID 1 of the pod, orphans end up with us.
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
