/*
 * Hot-reset oracle for the vfioctl e2e lab: asks the kernel itself what
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (and optionally VFIO_DEVICE_PCI_HOT_RESET)
 * says, opening the group the way QEMU does (legacy container, type1v2).
 *
 *   hotreset info  BDF GROUP               -> {"ok":true,"devices":[...]} | {"ok":false,...}
 *   hotreset reset BDF GROUP [GROUP...]    -> info, then a hot reset passing every group fd
 *   hotreset hold  BDF GROUP               -> keep the device fd open until killed
 *
 * Output is one JSON line on stdout; exit status 0 whenever the answer was
 * printed (the answer itself may be a kernel refusal), 2 on usage errors.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>

#define MAX_GROUPS 64

static int container = -1;

static void fail(const char *stage, int err)
{
	const char *name = strerrorname_np(err);
	printf("{\"ok\":false,\"stage\":\"%s\",\"errno\":\"%s\"}\n", stage,
	       name ? name : "EUNKNOWN");
	fflush(stdout);
}

/* Opens /dev/vfio/N and attaches it to the shared container; -1 on failure. */
static int open_group(int group, const char **stage)
{
	char path[64];
	struct vfio_group_status status = { .argsz = sizeof(status) };
	int fd;

	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		*stage = "open_group";
		return -1;
	}
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0) {
		*stage = "group_get_status";
		return -1;
	}
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EPERM;
		*stage = "group_not_viable";
		return -1;
	}
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container) < 0) {
		*stage = "group_set_container";
		return -1;
	}
	return fd;
}

static int print_info(int devfd)
{
	struct vfio_pci_hot_reset_info probe = { .argsz = sizeof(probe) };
	struct vfio_pci_hot_reset_info *info;
	size_t size;
	__u32 i;

	/* First call sizes the reply: ENOSPC with count filled in. */
	if (ioctl(devfd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &probe) == 0) {
		printf("{\"ok\":true,\"devices\":[]}");
		return 0;
	}
	if (errno != ENOSPC) {
		fail("hot_reset_info", errno);
		return -1;
	}
	size = sizeof(*info) + probe.count * sizeof(struct vfio_pci_dependent_device);
	info = calloc(1, size);
	if (!info) {
		fail("calloc", ENOMEM);
		return -1;
	}
	info->argsz = size;
	if (ioctl(devfd, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0) {
		fail("hot_reset_info", errno);
		return -1;
	}
	printf("{\"ok\":true,\"devices\":[");
	for (i = 0; i < info->count; i++) {
		struct vfio_pci_dependent_device *d = &info->devices[i];
		printf("%s{\"bdf\":\"%04x:%02x:%02x.%x\",\"group\":%u}", i ? "," : "",
		       d->segment, d->bus, d->devfn >> 3, d->devfn & 7, d->group_id);
	}
	printf("]");
	free(info);
	return 0;
}

static int do_reset(int devfd, const int *fds, int nfds)
{
	size_t size = sizeof(struct vfio_pci_hot_reset) + nfds * sizeof(__s32);
	struct vfio_pci_hot_reset *rst = calloc(1, size);
	int i, ret;

	if (!rst)
		return -ENOMEM;
	rst->argsz = size;
	rst->count = nfds;
	for (i = 0; i < nfds; i++)
		rst->group_fds[i] = fds[i];
	ret = ioctl(devfd, VFIO_DEVICE_PCI_HOT_RESET, rst);
	ret = ret < 0 ? -errno : 0;
	free(rst);
	return ret;
}

static void on_term(int sig)
{
	(void)sig;
	_exit(0);
}

int main(int argc, char **argv)
{
	const char *stage = NULL;
	int fds[MAX_GROUPS];
	int nfds = 0, devfd, i;

	if (argc < 4 || argc - 3 > MAX_GROUPS ||
	    (strcmp(argv[1], "info") && strcmp(argv[1], "reset") && strcmp(argv[1], "hold"))) {
		fprintf(stderr, "usage: %s info|reset|hold BDF GROUP [GROUP...]\n", argv[0]);
		return 2;
	}

	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0) {
		fail("open_container", errno);
		return 0;
	}
	if (ioctl(container, VFIO_GET_API_VERSION) != VFIO_API_VERSION) {
		fail("api_version", EINVAL);
		return 0;
	}
	for (i = 3; i < argc; i++) {
		int fd = open_group(atoi(argv[i]), &stage);
		if (fd < 0) {
			fail(stage, errno);
			return 0;
		}
		fds[nfds++] = fd;
		/* The IOMMU model can only be set once a group is in the container. */
		if (i == 3 && ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0) {
			fail("set_iommu", errno);
			return 0;
		}
	}
	devfd = ioctl(fds[0], VFIO_GROUP_GET_DEVICE_FD, argv[2]);
	if (devfd < 0) {
		fail("get_device_fd", errno);
		return 0;
	}

	if (!strcmp(argv[1], "hold")) {
		signal(SIGTERM, on_term);
		signal(SIGINT, on_term);
		printf("{\"ok\":true,\"holding\":\"%s\",\"pid\":%d}\n", argv[2], getpid());
		fflush(stdout);
		for (;;)
			pause();
	}

	if (print_info(devfd) < 0)
		return 0;
	if (!strcmp(argv[1], "reset")) {
		int ret = do_reset(devfd, fds, nfds);
		if (ret == 0)
			printf(",\"reset\":{\"ok\":true}");
		else
			printf(",\"reset\":{\"ok\":false,\"errno\":\"%s\"}",
			       strerrorname_np(-ret) ? strerrorname_np(-ret) : "EUNKNOWN");
	}
	printf("}\n");
	return 0;
}
