// trustme-bench-spawn: run one command and report its wall time and peak RSS, for bench/run.
//
//   trustme-bench-spawn [--timeout SEC] ERRFILE ARG...
//   prints "NANOSECONDS WAIT_STATUS MAXRSS_KIB TIMED_OUT CPU_NANOSECONDS\n" on stdout
// CPU is user + system time of the command and of the children it reaped (wait4's rusage): on a busy
// machine it is a steadier measure of the work done than wall time, which includes waiting for a CPU.
// With --timeout, a command still running after SEC seconds is killed (SIGKILL) and reported with
// TIMED_OUT 1, so a runtime that hangs cannot stall the benchmark.
//
// Why a separate program: ru_maxrss of a process counts the memory of the image it exec'ed *from*
// (exec folds the old mm's high-water mark into the process's maxrss). Spawned straight from the Python
// harness, every command would report the harness's ~15 MiB. Forked from this small static program, a
// runtime's peak RSS is its own. The time is taken here too, around fork+exec+wait4 with
// CLOCK_MONOTONIC, so the launcher's own start-up is not billed to the command.
// The command gets /dev/null as stdin and stdout, and ERRFILE (truncated) as stderr.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

int main(int argc, char** argv) {
    int timeout_ms = -1;
    if (argc > 2 && std::strcmp(argv[1], "--timeout") == 0) {
        timeout_ms = std::atoi(argv[2]) * 1000;
        argc -= 2;
        argv += 2;
    }
    if (argc < 3) {
        std::fprintf(stderr, "usage: trustme-bench-spawn [--timeout SEC] ERRFILE ARG...\n");
        return 2;
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int err = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (devnull < 0 || err < 0) {
        std::perror("trustme-bench-spawn: open");
        return 2;
    }
    timespec t0{}, t1{};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        std::perror("trustme-bench-spawn: fork");
        return 2;
    }
    if (pid == 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(err, 2);
        execvp(argv[2], argv + 2);
        std::fprintf(stderr, "trustme-bench-spawn: exec %s: %s\n", argv[2], std::strerror(errno));
        _exit(127);
    }
    int timed_out = 0;
    if (timeout_ms > 0) {
        // A pidfd becomes readable when the child exits; poll it with the deadline.
        int pfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
        if (pfd >= 0) {
            pollfd p{pfd, POLLIN, 0};
            int rc;
            while ((rc = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {
            }
            if (rc == 0) {
                kill(pid, SIGKILL);
                timed_out = 1;
            }
            close(pfd);
        }
    }
    int status = 0;
    rusage ru{};
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            std::perror("trustme-bench-spawn: wait4");
            return 2;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long long cpu_ns =
        (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
    std::printf("%lld %d %ld %d %lld\n", ns, status, ru.ru_maxrss, timed_out, cpu_ns);
    return 0;
}
