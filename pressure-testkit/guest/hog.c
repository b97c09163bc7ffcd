/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hog: a memory hog for the kernel-matrix guest (built with `gcc -static`).
 *
 * Moves itself into a cgroup (writes 0 to <dir>/cgroup.procs, which means
 * "the writing process" in both v1 and v2), then allocates CHUNK KiB at a
 * time, touches every page so the memory is really charged, and sleeps
 * INTERVAL ms between chunks, until MAX MiB are held or the kernel kills it.
 *
 * With -v it prints one line per chunk on stdout, "t=<realtime s> kib=<held>",
 * so the harness knows the last moment it was alive and how much it held.
 * Exit status: 0 when MAX was reached, 2 on a usage error, 3 when the cgroup
 * could not be joined, 4 when malloc failed; a kill shows as signal 9.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: hog [-c CGROUP_DIR] [-s CHUNK_KIB] [-i INTERVAL_MS] [-m MAX_MIB] [-v]\n");
	exit(2);
}

static int join_cgroup(const char *dir)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	fd = open(path, O_WRONLY);
	if (fd < 0) {
		perror(path);
		return -1;
	}
	if (write(fd, "0", 1) != 1) {
		perror(path);
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cgroup = NULL;
	long chunk_kib = 1024, interval_ms = 0, max_mib = 0;
	int verbose = 0, opt;
	long held_kib = 0;
	long page = sysconf(_SC_PAGESIZE);

	while ((opt = getopt(argc, argv, "c:s:i:m:v")) != -1) {
		switch (opt) {
		case 'c': cgroup = optarg; break;
		case 's': chunk_kib = atol(optarg); break;
		case 'i': interval_ms = atol(optarg); break;
		case 'm': max_mib = atol(optarg); break;
		case 'v': verbose = 1; break;
		default: usage();
		}
	}
	if (chunk_kib <= 0 || interval_ms < 0 || max_mib < 0)
		usage();
	if (cgroup && join_cgroup(cgroup) != 0)
		return 3;
	setvbuf(stdout, NULL, _IOLBF, 0);

	for (;;) {
		size_t len = (size_t)chunk_kib * 1024;
		char *p = malloc(len);
		struct timespec now;

		if (!p) {
			fprintf(stderr, "hog: malloc(%zu) failed after %ld KiB\n", len, held_kib);
			return 4;
		}
		/* One write per page charges it; the pattern keeps it from being a zero page. */
		for (size_t off = 0; off < len; off += (size_t)page)
			p[off] = (char)(off / (size_t)page + 1);
		held_kib += chunk_kib;
		if (verbose) {
			clock_gettime(CLOCK_REALTIME, &now);
			printf("t=%ld.%06ld kib=%ld\n", (long)now.tv_sec, now.tv_nsec / 1000, held_kib);
		}
		if (max_mib && held_kib >= max_mib * 1024)
			return 0;
		if (interval_ms) {
			struct timespec d = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
			nanosleep(&d, NULL);
		}
	}
}
