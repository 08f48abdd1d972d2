/*
 * Probe oracle for the vfioctl e2e lab: what the kernel answers for one vfio device,
 * asked independently of vfioctl (plain C against the kernel's uapi headers).
 *
 *   probe group BDF GROUP    -> opens through /dev/vfio/vfio + /dev/vfio/GROUP (type1v2)
 *   probe cdev  BDF CDEV     -> opens through /dev/iommu + /dev/vfio/devices/CDEV (6.6+)
 *   probe hold  BDF GROUP    -> opens through the group, prints {"held":true}, and keeps
 *                               everything open until killed
 *   probe migrate BDF GROUP  -> drives a migration through the device's own FSM: PRE_COPY
 *                               (when offered) and STOP_COPY reading the data stream, then
 *                               RESUMING with that stream (accepted) and with garbage
 *                               (must be refused), printing the byte counts
 *   probe consts             -> the ioctl numbers and struct sizes vfioctl's uapi module uses
 *
 * Output: one JSON line. {"ok":true,"via":…,"info":{"flags":N,"regions":N,"irqs":N,
 * "caps":[ids]},"migration":N|null,"dirtyTracking":bool,"lowPower":bool,
 * "hotReset":{"flags":N,"devices":[{"bdf","id"}]}|{"errno":"E…"}} or
 * {"ok":false,"stage":…,"errno":…}. Exit 0 whenever an answer was printed, 2 on usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include <linux/vfio.h>
#include <linux/version.h>

/* 6.1's libc headers have no iommufd.h and no cdev ioctls: define what the cdev path uses (6.6 uapi). */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
struct vfio_device_bind_iommufd { __u32 argsz; __u32 flags; __s32 iommufd; __u32 out_devid; };
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
struct vfio_device_attach_iommufd_pt { __u32 argsz; __u32 flags; __u32 pt_id; };
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#endif
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#else
struct iommu_ioas_alloc { __u32 size; __u32 flags; __u32 out_ioas_id; };
#define IOMMU_IOAS_ALLOC _IO(';', 0x81)
struct iommu_destroy { __u32 size; __u32 id; };
#define IOMMU_DESTROY _IO(';', 0x80)
#endif
#ifndef VFIO_PCI_HOT_RESET_FLAG_DEV_ID
#define VFIO_PCI_HOT_RESET_FLAG_DEV_ID (1 << 0)
#endif

static void fail(const char *stage, int err)
{
	const char *name = strerrorname_np(err);
	printf("{\"ok\":false,\"stage\":\"%s\",\"errno\":\"%s\"}\n", stage, name ? name : "EUNKNOWN");
	fflush(stdout);
}

static int open_group(const char *bdf, int group, const char **stage)
{
	char path[64];
	struct vfio_group_status status = { .argsz = sizeof(status) };
	int container, fd, dev;

	*stage = "open_container";
	container = open("/dev/vfio/vfio", O_RDWR);
	if (container < 0)
		return -1;
	snprintf(path, sizeof(path), "/dev/vfio/%d", group);
	*stage = "open_group";
	fd = open(path, O_RDWR);
	if (fd < 0)
		return -1;
	*stage = "group_get_status";
	if (ioctl(fd, VFIO_GROUP_GET_STATUS, &status) < 0)
		return -1;
	if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EPERM;
		return -1;
	}
	*stage = "group_set_container";
	if (ioctl(fd, VFIO_GROUP_SET_CONTAINER, &container) < 0)
		return -1;
	*stage = "set_iommu";
	if (ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) < 0)
		return -1;
	*stage = "get_device_fd";
	dev = ioctl(fd, VFIO_GROUP_GET_DEVICE_FD, bdf);
	return dev;
}

static int open_cdev(const char *name, const char **stage)
{
	char path[96];
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct iommu_ioas_alloc ioas = { .size = sizeof(ioas) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	int iommufd, dev;

	*stage = "open_iommufd";
	iommufd = open("/dev/iommu", O_RDWR);
	if (iommufd < 0)
		return -1;
	snprintf(path, sizeof(path), "/dev/vfio/devices/%s", name);
	*stage = "open_cdev";
	dev = open(path, O_RDWR);
	if (dev < 0)
		return -1;
	bind.iommufd = iommufd;
	*stage = "bind_iommufd";
	if (ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind) < 0)
		return -1;
	*stage = "ioas_alloc";
	if (ioctl(iommufd, IOMMU_IOAS_ALLOC, &ioas) < 0)
		return -1;
	attach.pt_id = ioas.out_ioas_id;
	*stage = "attach_pt";
	if (ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach) < 0)
		return -1;
	return dev;
}

/* 0: supported, else the errno (ENOTTY: not supported). */
static int probe_feature(int dev, __u32 feature, __u32 op)
{
	struct vfio_device_feature f = { .argsz = sizeof(f), .flags = VFIO_DEVICE_FEATURE_PROBE | op | feature };

	return ioctl(dev, VFIO_DEVICE_FEATURE, &f) < 0 ? errno : 0;
}

static void print_info(int dev)
{
	struct vfio_device_info *info = calloc(1, sizeof(*info));
	__u32 off;
	int first = 1;

	info->argsz = sizeof(*info);
	if (ioctl(dev, VFIO_DEVICE_GET_INFO, info) < 0) {
		printf("\"info\":{\"errno\":\"%s\"}", strerrorname_np(errno));
		free(info);
		return;
	}
	if ((info->flags & VFIO_DEVICE_FLAGS_CAPS) && info->argsz > sizeof(*info)) {
		__u32 need = info->argsz;
		info = realloc(info, need);
		memset(info, 0, need);
		info->argsz = need;
		if (ioctl(dev, VFIO_DEVICE_GET_INFO, info) < 0)
			info->flags &= ~VFIO_DEVICE_FLAGS_CAPS;
	}
	printf("\"info\":{\"flags\":%u,\"regions\":%u,\"irqs\":%u,\"caps\":[", info->flags, info->num_regions, info->num_irqs);
	if (info->flags & VFIO_DEVICE_FLAGS_CAPS) {
		for (off = info->cap_offset; off && off + 8 <= info->argsz; ) {
			struct vfio_info_cap_header *h = (void *)((char *)info + off);
			printf("%s%u", first ? "" : ",", h->id);
			first = 0;
			if (h->next <= off)
				break;
			off = h->next;
		}
	}
	printf("]}");
	free(info);
}

static void print_migration(int dev)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_migration m;
	} q = { .f = { .argsz = sizeof(q), .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION } };

	if (probe_feature(dev, VFIO_DEVICE_FEATURE_MIGRATION, VFIO_DEVICE_FEATURE_GET) ||
	    ioctl(dev, VFIO_DEVICE_FEATURE, &q) < 0)
		printf("\"migration\":null");
	else
		printf("\"migration\":%llu", (unsigned long long)q.m.flags);
}

static void print_hot_reset(int dev)
{
	struct vfio_pci_hot_reset_info probe = { .argsz = sizeof(probe) };
	struct vfio_pci_hot_reset_info *info;
	size_t size;
	__u32 i;

	if (ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, &probe) == 0) {
		printf("\"hotReset\":{\"flags\":%u,\"devices\":[]}", probe.flags);
		return;
	}
	if (errno != ENOSPC) {
		printf("\"hotReset\":{\"errno\":\"%s\"}", strerrorname_np(errno));
		return;
	}
	size = sizeof(*info) + probe.count * sizeof(struct vfio_pci_dependent_device);
	info = calloc(1, size);
	info->argsz = size;
	if (ioctl(dev, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0) {
		printf("\"hotReset\":{\"errno\":\"%s\"}", strerrorname_np(errno));
		free(info);
		return;
	}
	printf("\"hotReset\":{\"flags\":%u,\"devices\":[", info->flags);
	for (i = 0; i < info->count; i++) {
		struct vfio_pci_dependent_device *d = &info->devices[i];
		/* group_id and devid share the first 4 bytes of the entry */
		printf("%s{\"bdf\":\"%04x:%02x:%02x.%x\",\"id\":%u}", i ? "," : "", d->segment, d->bus,
		       d->devfn >> 3, d->devfn & 7, d->group_id);
	}
	printf("]}");
	free(info);
}

/* VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE SET: the new state; the kernel returns a data fd or -1. */
static int set_state(int dev, __u32 state, int *data_fd)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_mig_state m;
	} q = { .f = { .argsz = sizeof(q), .flags = VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE },
		.m = { .device_state = state, .data_fd = -1 } };

	if (ioctl(dev, VFIO_DEVICE_FEATURE, &q) < 0)
		return -1;
	if (data_fd)
		*data_fd = q.m.data_fd;
	else if (q.m.data_fd >= 0)
		close(q.m.data_fd);
	return 0;
}

/* Read until end of stream (0) or, in PRE_COPY, its temporary end (ENOMSG); -1 on another error. */
static ssize_t drain(int fd, char *buf, size_t room)
{
	size_t got = 0;

	for (;;) {
		ssize_t n = read(fd, buf + got, room - got);
		if (n == 0 || (n < 0 && errno == ENOMSG))
			return got;
		if (n < 0)
			return -1;
		got += n;
		if (got == room)
			return got;
	}
}

static void migrate(int dev)
{
	struct {
		struct vfio_device_feature f;
		struct vfio_device_feature_migration m;
	} q = { .f = { .argsz = sizeof(q), .flags = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION } };
	char data[4096];
	ssize_t pre = -1, total, n;
	int fd = -1, in = -1, refused;

	if (ioctl(dev, VFIO_DEVICE_FEATURE, &q) < 0) {
		fail("migration", errno);
		return;
	}
#ifdef VFIO_MIGRATION_PRE_COPY
	if (q.m.flags & VFIO_MIGRATION_PRE_COPY) {
		if (set_state(dev, VFIO_DEVICE_STATE_PRE_COPY, &fd) < 0 || fd < 0) {
			fail("set_pre_copy", errno);
			return;
		}
		pre = drain(fd, data, sizeof(data));
		if (pre < 0 || set_state(dev, VFIO_DEVICE_STATE_STOP_COPY, NULL) < 0) {
			fail("pre_copy", errno);
			return;
		}
	}
#endif
	if (fd < 0 && (set_state(dev, VFIO_DEVICE_STATE_STOP_COPY, &fd) < 0 || fd < 0)) {
		fail("set_stop_copy", errno);
		return;
	}
	n = drain(fd, data + (pre > 0 ? pre : 0), sizeof(data) - (pre > 0 ? pre : 0));
	if (n < 0) {
		fail("stop_copy_read", errno);
		return;
	}
	total = n + (pre > 0 ? pre : 0);
	close(fd);
	if (set_state(dev, VFIO_DEVICE_STATE_STOP, NULL) < 0 || set_state(dev, VFIO_DEVICE_STATE_RESUMING, &in) < 0 || in < 0) {
		fail("set_resuming", errno);
		return;
	}
	if (write(in, data, total) != total || set_state(dev, VFIO_DEVICE_STATE_STOP, NULL) < 0) {
		fail("resume", errno);
		return;
	}
	close(in);
	if (set_state(dev, VFIO_DEVICE_STATE_RUNNING, NULL) < 0 || set_state(dev, VFIO_DEVICE_STATE_STOP, NULL) < 0 ||
	    set_state(dev, VFIO_DEVICE_STATE_RESUMING, &in) < 0 || in < 0) {
		fail("set_resuming_again", errno);
		return;
	}
	if (write(in, "not this device's state", 23) != 23) {
		fail("write_garbage", errno);
		return;
	}
	refused = set_state(dev, VFIO_DEVICE_STATE_STOP, NULL) < 0 ? errno : 0;
	close(in);
	printf("{\"ok\":true,\"flags\":%llu,\"precopyBytes\":%zd,\"bytes\":%zd,\"stream\":\"%.*s\",\"garbageRefused\":\"%s\"}\n",
	       (unsigned long long)q.m.flags, pre, total, (int)strcspn(data, "\n\"\\"), data, refused ? strerrorname_np(refused) : "no");
}

#define C(name) printf("%s\"%s\":%lu", first ? "" : ",", #name, (unsigned long)(name)), first = 0
#define S(type) printf(",\"sizeof %s\":%zu", #type, sizeof(struct type))

static void print_consts(void)
{
	int first = 1;

	printf("{");
	C(VFIO_GET_API_VERSION); C(VFIO_CHECK_EXTENSION); C(VFIO_SET_IOMMU); C(VFIO_GROUP_GET_STATUS);
	C(VFIO_GROUP_SET_CONTAINER); C(VFIO_GROUP_GET_DEVICE_FD); C(VFIO_DEVICE_GET_INFO);
	C(VFIO_DEVICE_GET_PCI_HOT_RESET_INFO); C(VFIO_DEVICE_FEATURE); C(VFIO_DEVICE_BIND_IOMMUFD);
	C(VFIO_DEVICE_ATTACH_IOMMUFD_PT); C(IOMMU_IOAS_ALLOC); C(IOMMU_DESTROY); C(VFIO_TYPE1v2_IOMMU);
	C(VFIO_DEVICE_FEATURE_MIGRATION); C(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY); C(VFIO_DEVICE_FEATURE_DMA_LOGGING_START);
	S(vfio_device_info); S(vfio_group_status); S(vfio_pci_hot_reset_info); S(vfio_pci_dependent_device);
	S(vfio_device_bind_iommufd); S(vfio_device_attach_iommufd_pt); S(iommu_ioas_alloc);
	printf("}\n");
}

int main(int argc, char **argv)
{
	const char *stage = "usage";
	int dev;

	if (argc == 2 && !strcmp(argv[1], "consts")) {
		print_consts();
		return 0;
	}
	if (argc != 4 || (strcmp(argv[1], "group") && strcmp(argv[1], "cdev") && strcmp(argv[1], "hold") && strcmp(argv[1], "migrate"))) {
		fprintf(stderr, "usage: %s group|hold|migrate BDF GROUP | cdev BDF vfioN | consts\n", argv[0]);
		return 2;
	}
	dev = strcmp(argv[1], "cdev") ? open_group(argv[2], atoi(argv[3]), &stage) : open_cdev(argv[3], &stage);
	if (dev < 0) {
		fail(stage, errno);
		return 0;
	}
	if (!strcmp(argv[1], "migrate")) {
		migrate(dev);
		return 0;
	}
	if (!strcmp(argv[1], "hold")) {
		printf("{\"held\":true}\n");
		fflush(stdout);
		for (;;)
			pause();
	}
	printf("{\"ok\":true,\"via\":\"%s\",", strcmp(argv[1], "cdev") ? "group" : "cdev");
	print_info(dev);
	printf(",");
	print_migration(dev);
	printf(",\"dirtyTracking\":%s", probe_feature(dev, VFIO_DEVICE_FEATURE_DMA_LOGGING_START, VFIO_DEVICE_FEATURE_SET) ? "false" : "true");
	printf(",\"lowPower\":%s,", probe_feature(dev, VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, VFIO_DEVICE_FEATURE_SET) ? "false" : "true");
	print_hot_reset(dev);
	printf("}\n");
	return 0;
}
