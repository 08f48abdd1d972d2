/*
 * The file-system floor of `vfioctl groups --json`, for the benchmark: the same sysfs files
 * read from C with nothing else (no parsing, no output). For every function under
 * ROOT/sys/bus/pci/devices: its bus link, modalias, driver_override, reset_method,
 * numa_node and iommu_group link; drivers from one listing per driver. What this takes
 * on a machine is what the kernel charges for the data; vfioctl cannot go below it.
 *
 * usage: floor ROOT     (prints the number of functions read)
 */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char buf[4096];

static void slurp(const char *path) {
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	if (read(fd, buf, sizeof buf) < 0)
		buf[0] = 0;
	close(fd);
}

int main(int argc, char **argv) {
	static const char *attrs[] = { "modalias", "driver_override", "reset_method", "numa_node" };
	char base[PATH_MAX], p[PATH_MAX], target[PATH_MAX];
	long n = 0;
	if (argc != 2) {
		fprintf(stderr, "usage: floor ROOT\n");
		return 2;
	}

	snprintf(base, sizeof base, "%s/sys/bus/pci/drivers", argv[1]);
	DIR *drivers = opendir(base);
	for (struct dirent *drv; drivers && (drv = readdir(drivers));) {
		snprintf(p, sizeof p, "%s/%s", base, drv->d_name);
		DIR *d = opendir(p);
		while (d && readdir(d))
			;
		if (d)
			closedir(d);
	}
	if (drivers)
		closedir(drivers);

	snprintf(base, sizeof base, "%s/sys/bus/pci/devices", argv[1]);
	DIR *devices = opendir(base);
	if (!devices) {
		perror(base);
		return 1;
	}
	for (struct dirent *e; (e = readdir(devices));) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", base, e->d_name);
		if (readlink(p, target, sizeof target) < 0)
			continue;
		for (unsigned i = 0; i < sizeof attrs / sizeof *attrs; i++) {
			snprintf(p, sizeof p, "%s/%s/%s", base, e->d_name, attrs[i]);
			slurp(p);
		}
		snprintf(p, sizeof p, "%s/%s/iommu_group", base, e->d_name);
		if (readlink(p, target, sizeof target) < 0)
			target[0] = 0;
		n++;
	}
	closedir(devices);
	printf("%ld\n", n);
	return 0;
}
