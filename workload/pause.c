/*
 * A pod sandbox's pause process, for the pause image the pod tests' containerd pulls (Kubernetes'
 * own is a registry image, and no registry outside this machine is reached): it holds the pod's
 * namespaces open, reaps children and exits on SIGINT or SIGTERM. Static, so its image is one file.
 */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  signal(SIGINT, on_stop);
  signal(SIGTERM, on_stop);
  signal(SIGCHLD, on_child);
  for (;;) pause();
}
