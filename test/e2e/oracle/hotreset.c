/*
 * Hot-reset oracle for the vfioctl e2e lab: asks the kernel itself what
 * VFIO_DEVICE_GET_PCI_HOT_RESET_INFO (and optionally VFIO_DEVICE_PCI_HOT_RESET)
 * says, opening the group the way QEMU does (legacy container, type1v2).
 *
 *   hotreset info  BDF GROUP               -> {"ok":true,"devices":[...]} | {"ok":false,...}
 *   hotreset reset BDF GROUP [GROUP...]    -> info, then a hot reset passing every group fd
 *   hotreset hold  BDF GROUP               -> keep the device fd open until killed
 *
 * The cdev/iommufd way (kernel 6.6+ with CONFIG_VFIO_DEVICE_CDEV; built only when the
 * headers have it): every BDF is opened through /dev/vfio/devices/vfioN, bound with
 * VFIO_DEVICE_BIND_IOMMUFD and attached to an IOAS. The devices before `--` share one
 * iommufd context (the first is the one asked), those after it share a second one.
 *
 *   hotreset cdev-info  BDF [BDF...] [-- BDF...] -> {"ok":true,"flags":{...},"bound":{...},"devices":[...]}
 *   hotreset cdev-reset BDF [BDF...] [-- BDF...] -> info, then a hot reset with an empty group list
 *   hotreset cdev-hold  BDF [BDF...]             -> keep them bound until killed
 *
 * Output is one JSON line on stdout; exit status 0 whenever the answer was
 * printed (the answer itself may be a kernel refusal), 2 on usage errors.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>
#if defined(VFIO_DEVICE_BIND_IOMMUFD) && __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#define HAVE_CDEV 1
#endif

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

#ifdef HAVE_CDEV
/* One iommufd context: /dev/iommu and an IOAS the devices attach to. */
struct ictx {
	int fd;
	__u32 ioas;
};

static int ictx_open(struct ictx *c, const char **stage)
{
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };

	c->fd = open("/dev/iommu", O_RDWR);
	if (c->fd < 0) {
		*stage = "open_iommufd";
		return -1;
	}
	if (ioctl(c->fd, IOMMU_IOAS_ALLOC, &alloc) < 0) {
		*stage = "ioas_alloc";
		return -1;
	}
	c->ioas = alloc.out_ioas_id;
	return 0;
}

/* Opens BDF's cdev, binds it to the context and attaches it to its IOAS; -1 on failure. */
static int cdev_bind(const char *bdf, struct ictx *c, __u32 *devid, const char **stage)
{
	char dir[128], node[128], name[64] = "";
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	struct dirent *e;
	DIR *d;
	int fd;

	snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(dir);
	if (!d) {
		*stage = "no_vfio_dev";
		return -1;
	}
	while ((e = readdir(d)))
		if (!strncmp(e->d_name, "vfio", 4) && strlen(e->d_name) < sizeof(name))
			strcpy(name, e->d_name);
	closedir(d);
	if (!name[0]) {
		errno = ENOENT;
		*stage = "no_vfio_dev";
		return -1;
	}
	snprintf(node, sizeof(node), "/dev/vfio/devices/%s", name);
	fd = open(node, O_RDWR);
	if (fd < 0) {
		*stage = "open_cdev";
		return -1;
	}
	bind.iommufd = c->fd;
	if (ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0) {
		*stage = "bind_iommufd";
		return -1;
	}
	attach.pt_id = c->ioas;
	if (ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0) {
		*stage = "attach_ioas";
		return -1;
	}
	*devid = bind.out_devid;
	return fd;
}

static void fail_at(const char *stage, const char *bdf, int err)
{
	const char *name = strerrorname_np(err);
	printf("{\"ok\":false,\"stage\":\"%s\",\"bdf\":\"%s\",\"errno\":\"%s\"}\n", stage, bdf,
	       name ? name : "EUNKNOWN");
	fflush(stdout);
}

static int cdev_main(int argc, char **argv)
{
	struct ictx ctx[2] = { { -1, 0 }, { -1, 0 } };
	const char *stage = NULL;
	__u32 devids[MAX_GROUPS];
	int fds[MAX_GROUPS], which[MAX_GROUPS];
	int n = 0, side = 0, i;
	const char *mode = argv[1] + strlen("cdev-");
	struct vfio_pci_hot_reset_info probe = { .argsz = sizeof(probe) };
	struct vfio_pci_hot_reset_info *info;
	size_t size;

	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--")) {
			side = 1;
			continue;
		}
		if (ctx[side].fd < 0 && ictx_open(&ctx[side], &stage) < 0) {
			fail_at(stage, argv[i], errno);
			return 0;
		}
		fds[n] = cdev_bind(argv[i], &ctx[side], &devids[n], &stage);
		if (fds[n] < 0) {
			fail_at(stage, argv[i], errno);
			return 0;
		}
		which[n++] = side;
	}

	if (!strcmp(mode, "hold")) {
		signal(SIGTERM, on_term);
		signal(SIGINT, on_term);
		printf("{\"ok\":true,\"holding\":\"%s\",\"via\":\"cdev\",\"pid\":%d}\n", argv[2], getpid());
		fflush(stdout);
		for (;;)
			pause();
	}

	/* INFO on the first device: sized by a first call, as in the group mode. */
	if (ioctl(fds[0], VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &probe) == 0) {
		size = sizeof(probe);
		info = calloc(1, size);
		*info = probe;
	} else if (errno != ENOSPC) {
		fail_at("hot_reset_info", argv[2], errno);
		return 0;
	} else {
		size = sizeof(*info) + probe.count * sizeof(struct vfio_pci_dependent_device);
		info = calloc(1, size);
		info->argsz = size;
		if (ioctl(fds[0], VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0) {
			fail_at("hot_reset_info", argv[2], errno);
			return 0;
		}
	}
	printf("{\"ok\":true,\"flags\":{\"devId\":%s,\"devIdOwned\":%s},\"bound\":{",
	       info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID ? "true" : "false",
	       info->flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED ? "true" : "false");
	for (i = 2, side = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			continue;
		printf("%s\"%s\":{\"devid\":%u,\"context\":%d}", side ? "," : "", argv[i],
		       devids[side], which[side]);
		side++;
	}
	printf("},\"devices\":[");
	for (__u32 k = 0; k < info->count; k++) {
		struct vfio_pci_dependent_device *dd = &info->devices[k];
		char id[16];

		if (dd->devid == (__u32)VFIO_PCI_DEVID_NOT_OWNED)
			strcpy(id, "\"not-owned\"");
		else if (dd->devid == VFIO_PCI_DEVID_OWNED)
			strcpy(id, "\"owned\"");
		else
			snprintf(id, sizeof(id), "%u", dd->devid);
		printf("%s{\"bdf\":\"%04x:%02x:%02x.%x\",\"devid\":%s}", k ? "," : "",
		       dd->segment, dd->bus, dd->devfn >> 3, dd->devfn & 7, id);
	}
	printf("]");
	free(info);
	if (!strcmp(mode, "reset")) {
		/* The empty group list: ownership is proven by the iommufd context. */
		struct vfio_pci_hot_reset rst = { .argsz = sizeof(rst), .count = 0 };

		if (ioctl(fds[0], VFIO_DEVICE_PCI_HOT_RESET, &rst) == 0)
			printf(",\"reset\":{\"ok\":true}");
		else
			printf(",\"reset\":{\"ok\":false,\"errno\":\"%s\"}",
			       strerrorname_np(errno) ? strerrorname_np(errno) : "EUNKNOWN");
	}
	printf("}\n");
	return 0;
}
#endif

int main(int argc, char **argv)
{
	const char *stage = NULL;
	int fds[MAX_GROUPS];
	int nfds = 0, devfd, i;

	if (argc >= 3 && (!strcmp(argv[1], "cdev-info") || !strcmp(argv[1], "cdev-reset") ||
			  !strcmp(argv[1], "cdev-hold"))) {
		if (argc - 2 > MAX_GROUPS || !strcmp(argv[2], "--")) {
			fprintf(stderr, "usage: %s cdev-info|cdev-reset|cdev-hold BDF [BDF...] [-- BDF...]\n", argv[0]);
			return 2;
		}
#ifdef HAVE_CDEV
		return cdev_main(argc, argv);
#else
		printf("{\"ok\":false,\"stage\":\"built_without_cdev_headers\",\"errno\":\"ENOTSUP\"}\n");
		return 0;
#endif
	}
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
