/*
 * The benchmark's meter: runs a command and reports what the kernel charged it, from
 * wait4(2): user and system CPU time in microseconds and the peak resident set in KiB.
 * The command's stdin, stdout and stderr are this process's; the report goes to the file
 * named first, as one line "USER_US SYS_US MAXRSS_KIB STATUS".
 *
 * usage: rusage REPORT-FILE COMMAND [ARG...]
 */
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: rusage REPORT-FILE COMMAND [ARG...]\n");
		return 2;
	}
	pid_t pid = fork();
	if (pid < 0)
		return 70;
	if (pid == 0) {
		execvp(argv[2], argv + 2);
		_exit(127);
	}
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0)
		return 70;
	FILE *f = fopen(argv[1], "w");
	if (!f)
		return 70;
	fprintf(f, "%ld %ld %ld %d\n", (long)ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec,
		(long)ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec, ru.ru_maxrss,
		WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
	fclose(f);
	return 0;
}
