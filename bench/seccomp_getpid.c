/* Installs a seccomp filter read from a file (struct sock_filter array; "-" for none) and
 * times N calls of one cheap syscall: the per-syscall cost the filter adds.
 * usage: seccomp_getpid FILE NR N [ARG0]  -> prints nanoseconds per call */
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	static struct sock_filter insns[4096];
	if (argc != 4 && argc != 5)
		return 2;
	if (strcmp(argv[1], "-")) {
		FILE *f = fopen(argv[1], "rb");
		size_t n = f ? fread(insns, sizeof insns[0], 4096, f) : 0;
		struct sock_fprog prog = {.len = n, .filter = insns};
		if (!n || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
		    syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog)) {
			perror("install");
			return 1;
		}
	}
	long nr = atol(argv[2]), n = atol(argv[3]);
	unsigned long arg0 = argc == 5 ? strtoul(argv[4], NULL, 0) : 0;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		syscall(nr, arg0, 0, 0, 0, 0, 0);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.2f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
	return 0;
}
