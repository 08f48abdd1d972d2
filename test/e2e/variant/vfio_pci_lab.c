// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio_pci_lab: a test-only vfio-pci variant driver for the vfioctl e2e lab.
 *
 * It exists so that modules.alias carries a real "vfio_pci:" override-only alias
 * for QEMU's e1000e (8086:10d3), which lets the lab exercise variant selection,
 * module loading and binding; and so that `vfioctl probe` meets a device that
 * supports live migration (migration uAPI v2) and dirty tracking.
 *
 * Migration: a minimal vfio_migration_ops. The device state is a small fixed
 * stream (a magic line naming the device), read from the saving fd in STOP_COPY
 * (and, from 6.2, the first half of it in PRE_COPY) and written back to the
 * resuming fd, which checks it on RESUMING -> STOP. It does not really save an
 * e1000e: it is enough for the kernel's migration FSM and for user space to see
 * what the driver registered. No P2P.
 * Dirty tracking: vfio_log_ops that report every page in a range dirty, which
 * over-reports but never misses a page.
 *
 * What was registered is readable in /sys/module/vfio_pci_lab/parameters/
 * (registered_migration_flags, registered_dirty_tracking): built against 6.1's
 * headers there is no PRE_COPY (uAPI 6.2) and no migration_get_data_size (6.3).
 */
#include <linux/anon_inodes.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/uaccess.h>
#include <linux/version.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>
#if LINUX_VERSION_CODE < KERNEL_VERSION(6, 7, 0) || IS_ENABLED(CONFIG_IOMMUFD_DRIVER)
#include <linux/iova_bitmap.h>
#define LAB_DIRTY_TRACKING 1
#else
#define LAB_DIRTY_TRACKING 0
#endif

#ifdef VFIO_MIGRATION_PRE_COPY
#define LAB_MIGRATION_FLAGS (VFIO_MIGRATION_STOP_COPY | VFIO_MIGRATION_PRE_COPY)
#else
#define LAB_MIGRATION_FLAGS VFIO_MIGRATION_STOP_COPY
#endif

static unsigned int registered_migration_flags = LAB_MIGRATION_FLAGS;
module_param(registered_migration_flags, uint, 0444);
MODULE_PARM_DESC(registered_migration_flags, "VFIO_MIGRATION_* flags this build registers (read-only)");
static bool registered_dirty_tracking = LAB_DIRTY_TRACKING;
module_param(registered_dirty_tracking, bool, 0444);
MODULE_PARM_DESC(registered_dirty_tracking, "whether this build registers vfio_log_ops (read-only)");

#define LAB_STATE_SIZE 64
#define LAB_MAGIC "vfio_pci_lab state v1 "

struct lab_migf {
	struct file *filp;
	struct mutex lock;
	bool disabled;
	/* Bytes of data[] readable so far (saving), or written so far (resuming). */
	size_t avail;
	/* In PRE_COPY: reaching avail is a temporary end of stream (ENOMSG). */
	bool precopy;
	u8 data[LAB_STATE_SIZE];
};

struct lab_device {
	struct vfio_pci_core_device core;
	struct mutex state_mutex;
	enum vfio_device_mig_state mig_state;
	struct lab_migf *saving;
	struct lab_migf *resuming;
	bool logging;
};

static struct lab_device *to_lab(struct vfio_device *vdev)
{
	return container_of(vdev, struct lab_device, core.vdev);
}

/* ---- migration data fds ---------------------------------------------------- */

static int lab_migf_release(struct inode *inode, struct file *filp)
{
	struct lab_migf *migf = filp->private_data;

	mutex_destroy(&migf->lock);
	kfree(migf);
	return 0;
}

static ssize_t lab_migf_read(struct file *filp, char __user *buf, size_t len, loff_t *pos)
{
	struct lab_migf *migf = filp->private_data;
	ssize_t done;

	if (pos)
		return -ESPIPE;
	pos = &filp->f_pos;
	mutex_lock(&migf->lock);
	if (migf->disabled) {
		done = -ENODEV;
	} else if (*pos >= migf->avail) {
		done = migf->precopy ? -ENOMSG : 0;
	} else {
		len = min_t(size_t, len, migf->avail - *pos);
		done = copy_to_user(buf, migf->data + *pos, len) ? -EFAULT : len;
		if (done > 0)
			*pos += done;
	}
	mutex_unlock(&migf->lock);
	return done;
}

static ssize_t lab_migf_write(struct file *filp, const char __user *buf, size_t len, loff_t *pos)
{
	struct lab_migf *migf = filp->private_data;
	ssize_t done;

	if (pos)
		return -ESPIPE;
	pos = &filp->f_pos;
	mutex_lock(&migf->lock);
	if (migf->disabled) {
		done = -ENODEV;
	} else if (*pos + len > LAB_STATE_SIZE) {
		done = -ENOSPC;
	} else {
		done = copy_from_user(migf->data + *pos, buf, len) ? -EFAULT : len;
		if (done > 0) {
			*pos += done;
			migf->avail = max_t(size_t, migf->avail, *pos);
		}
	}
	mutex_unlock(&migf->lock);
	return done;
}

#ifdef VFIO_MIG_GET_PRECOPY_INFO
static long lab_migf_ioctl(struct file *filp, unsigned int cmd, unsigned long arg)
{
	struct lab_migf *migf = filp->private_data;
	struct vfio_precopy_info info = {};
	unsigned long minsz = offsetofend(struct vfio_precopy_info, dirty_bytes);
	long ret = 0;

	if (cmd != VFIO_MIG_GET_PRECOPY_INFO)
		return -ENOTTY;
	if (copy_from_user(&info, (void __user *)arg, minsz))
		return -EFAULT;
	if (info.argsz < minsz)
		return -EINVAL;
	mutex_lock(&migf->lock);
	if (migf->disabled || !migf->precopy)
		ret = -EINVAL;
	else
		info.initial_bytes = migf->avail - min_t(loff_t, filp->f_pos, migf->avail);
	mutex_unlock(&migf->lock);
	if (ret)
		return ret;
	info.dirty_bytes = 0;
	return copy_to_user((void __user *)arg, &info, minsz) ? -EFAULT : 0;
}
#endif

static const struct file_operations lab_migf_fops = {
	.owner = THIS_MODULE,
	.read = lab_migf_read,
	.write = lab_migf_write,
	.release = lab_migf_release,
#ifdef VFIO_MIG_GET_PRECOPY_INFO
	.unlocked_ioctl = lab_migf_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
#endif
};

static struct lab_migf *lab_migf_new(struct lab_device *lab, int flags)
{
	struct lab_migf *migf = kzalloc(sizeof(*migf), GFP_KERNEL_ACCOUNT);

	if (!migf)
		return ERR_PTR(-ENOMEM);
	migf->filp = anon_inode_getfile("vfio_pci_lab_mig", &lab_migf_fops, migf, flags);
	if (IS_ERR(migf->filp)) {
		struct file *err = migf->filp;

		kfree(migf);
		return ERR_CAST(err);
	}
	stream_open(migf->filp->f_inode, migf->filp);
	mutex_init(&migf->lock);
	return migf;
}

/* The fd reaches an error (ENODEV) when the FSM leaves its state; the driver's reference goes. */
static void lab_migf_disable(struct lab_migf **slot)
{
	struct lab_migf *migf = *slot;

	if (!migf)
		return;
	mutex_lock(&migf->lock);
	migf->disabled = true;
	migf->avail = 0;
	mutex_unlock(&migf->lock);
	fput(migf->filp);
	*slot = NULL;
}

static struct file *lab_saving(struct lab_device *lab, bool precopy)
{
	struct lab_migf *migf = lab_migf_new(lab, O_RDONLY);

	if (IS_ERR(migf))
		return ERR_CAST(migf);
	snprintf((char *)migf->data, LAB_STATE_SIZE, LAB_MAGIC "%s\n", pci_name(lab->core.pdev));
	migf->avail = precopy ? LAB_STATE_SIZE / 2 : LAB_STATE_SIZE;
	migf->precopy = precopy;
	get_file(migf->filp);
	lab->saving = migf;
	return migf->filp;
}

/* One arc of the FSM (vfio_mig_get_next_state() walks the path). */
static struct file *lab_step(struct lab_device *lab, enum vfio_device_mig_state next)
{
	enum vfio_device_mig_state cur = lab->mig_state;

	if ((cur == VFIO_DEVICE_STATE_RUNNING && next == VFIO_DEVICE_STATE_STOP) ||
	    (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_RUNNING))
		return NULL;
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_STOP_COPY)
		return lab_saving(lab, false);
	if (cur == VFIO_DEVICE_STATE_STOP_COPY && next == VFIO_DEVICE_STATE_STOP) {
		lab_migf_disable(&lab->saving);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_STOP && next == VFIO_DEVICE_STATE_RESUMING) {
		struct lab_migf *migf = lab_migf_new(lab, O_WRONLY);

		if (IS_ERR(migf))
			return ERR_CAST(migf);
		get_file(migf->filp);
		lab->resuming = migf;
		return migf->filp;
	}
	if (cur == VFIO_DEVICE_STATE_RESUMING && next == VFIO_DEVICE_STATE_STOP) {
		struct lab_migf *migf = lab->resuming;
		bool good = false;

		if (migf) {
			mutex_lock(&migf->lock);
			good = migf->avail >= sizeof(LAB_MAGIC) - 1 &&
			       !memcmp(migf->data, LAB_MAGIC, sizeof(LAB_MAGIC) - 1);
			mutex_unlock(&migf->lock);
		}
		lab_migf_disable(&lab->resuming);
		if (!good) {
			/* Not this driver's state: the device is in ERROR until it is reset (closed). */
			lab->mig_state = VFIO_DEVICE_STATE_ERROR;
			return ERR_PTR(-EINVAL);
		}
		return NULL;
	}
#ifdef VFIO_MIGRATION_PRE_COPY
	if (cur == VFIO_DEVICE_STATE_RUNNING && next == VFIO_DEVICE_STATE_PRE_COPY)
		return lab_saving(lab, true);
	if (cur == VFIO_DEVICE_STATE_PRE_COPY && next == VFIO_DEVICE_STATE_RUNNING) {
		lab_migf_disable(&lab->saving);
		return NULL;
	}
	if (cur == VFIO_DEVICE_STATE_PRE_COPY && next == VFIO_DEVICE_STATE_STOP_COPY) {
		/* The same fd goes on: the rest of the state becomes readable, then a final end of stream. */
		mutex_lock(&lab->saving->lock);
		lab->saving->avail = LAB_STATE_SIZE;
		lab->saving->precopy = false;
		mutex_unlock(&lab->saving->lock);
		return NULL;
	}
#endif
	return ERR_PTR(-EINVAL);
}

static struct file *lab_set_state(struct vfio_device *vdev, enum vfio_device_mig_state new_state)
{
	struct lab_device *lab = to_lab(vdev);
	enum vfio_device_mig_state next;
	struct file *res = NULL;
	int ret;

	mutex_lock(&lab->state_mutex);
	while (new_state != lab->mig_state) {
		ret = vfio_mig_get_next_state(vdev, lab->mig_state, new_state, &next);
		if (ret) {
			res = ERR_PTR(ret);
			break;
		}
		res = lab_step(lab, next);
		if (IS_ERR(res))
			break;
		lab->mig_state = next;
		if (WARN_ON(res && new_state != lab->mig_state)) {
			fput(res);
			res = ERR_PTR(-EINVAL);
			break;
		}
	}
	mutex_unlock(&lab->state_mutex);
	return res;
}

static int lab_get_state(struct vfio_device *vdev, enum vfio_device_mig_state *state)
{
	struct lab_device *lab = to_lab(vdev);

	mutex_lock(&lab->state_mutex);
	*state = lab->mig_state;
	mutex_unlock(&lab->state_mutex);
	return 0;
}

#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
static int lab_get_data_size(struct vfio_device *vdev, unsigned long *stop_copy_length)
{
	*stop_copy_length = LAB_STATE_SIZE;
	return 0;
}
#endif

static const struct vfio_migration_ops lab_mig_ops = {
	.migration_set_state = lab_set_state,
	.migration_get_state = lab_get_state,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 3, 0)
	.migration_get_data_size = lab_get_data_size,
#endif
};

/* ---- dirty tracking ---------------------------------------------------------- */

#if LAB_DIRTY_TRACKING
static int lab_log_start(struct vfio_device *vdev, struct rb_root_cached *ranges, u32 nnodes, u64 *page_size)
{
	struct lab_device *lab = to_lab(vdev);
	int ret = 0;

	mutex_lock(&lab->state_mutex);
	if (lab->logging)
		ret = -EINVAL;
	else
		lab->logging = true;
	mutex_unlock(&lab->state_mutex);
	return ret;
}

static int lab_log_stop(struct vfio_device *vdev)
{
	struct lab_device *lab = to_lab(vdev);

	mutex_lock(&lab->state_mutex);
	lab->logging = false;
	mutex_unlock(&lab->state_mutex);
	return 0;
}

static int lab_log_read_and_clear(struct vfio_device *vdev, unsigned long iova, unsigned long length,
				  struct iova_bitmap *dirty)
{
	struct lab_device *lab = to_lab(vdev);
	int ret = 0;

	mutex_lock(&lab->state_mutex);
	if (!lab->logging)
		ret = -EINVAL;
	else
		iova_bitmap_set(dirty, iova, length);
	mutex_unlock(&lab->state_mutex);
	return ret;
}

static const struct vfio_log_ops lab_log_ops = {
	.log_start = lab_log_start,
	.log_stop = lab_log_stop,
	.log_read_and_clear = lab_log_read_and_clear,
};
#endif

/* ---- device ops ----------------------------------------------------------- */

static int lab_open_device(struct vfio_device *core_vdev)
{
	struct lab_device *lab = to_lab(core_vdev);
	int ret;

	ret = vfio_pci_core_enable(&lab->core);
	if (ret)
		return ret;
	lab->mig_state = VFIO_DEVICE_STATE_RUNNING;
	vfio_pci_core_finish_enable(&lab->core);
	return 0;
}

static void lab_close_device(struct vfio_device *core_vdev)
{
	struct lab_device *lab = to_lab(core_vdev);

	mutex_lock(&lab->state_mutex);
	lab_migf_disable(&lab->saving);
	lab_migf_disable(&lab->resuming);
	lab->mig_state = VFIO_DEVICE_STATE_RUNNING;
	lab->logging = false;
	mutex_unlock(&lab->state_mutex);
	vfio_pci_core_close_device(core_vdev);
}

static int lab_init_dev(struct vfio_device *core_vdev)
{
	struct lab_device *lab = to_lab(core_vdev);

	mutex_init(&lab->state_mutex);
	lab->mig_state = VFIO_DEVICE_STATE_RUNNING;
	core_vdev->migration_flags = LAB_MIGRATION_FLAGS;
	core_vdev->mig_ops = &lab_mig_ops;
#if LAB_DIRTY_TRACKING
	core_vdev->log_ops = &lab_log_ops;
#endif
	return vfio_pci_core_init_dev(core_vdev);
}

static void lab_release_dev(struct vfio_device *core_vdev)
{
	mutex_destroy(&to_lab(core_vdev)->state_mutex);
	vfio_pci_core_release_dev(core_vdev);
}

static const struct vfio_device_ops lab_ops = {
	.name = "vfio-pci-lab",
	.init = lab_init_dev,
	.release = lab_release_dev,
	.open_device = lab_open_device,
	.close_device = lab_close_device,
	.ioctl = vfio_pci_core_ioctl,
	.device_feature = vfio_pci_core_ioctl_feature,
	.read = vfio_pci_core_read,
	.write = vfio_pci_core_write,
	.mmap = vfio_pci_core_mmap,
	.request = vfio_pci_core_request,
	.match = vfio_pci_core_match,
#if IS_ENABLED(CONFIG_IOMMUFD)
	/* With iommufd built in, registration refuses a device without these (6.2+). */
	.bind_iommufd = vfio_iommufd_physical_bind,
	.unbind_iommufd = vfio_iommufd_physical_unbind,
	.attach_ioas = vfio_iommufd_physical_attach_ioas,
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 6, 0)
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
#endif
#endif
};

static int lab_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct lab_device *lab;
	int ret;

	lab = vfio_alloc_device(lab_device, core.vdev, &pdev->dev, &lab_ops);
	if (IS_ERR(lab))
		return PTR_ERR(lab);

	dev_set_drvdata(&pdev->dev, &lab->core);
	ret = vfio_pci_core_register_device(&lab->core);
	if (ret)
		vfio_put_device(&lab->core.vdev);
	return ret;
}

static void lab_remove(struct pci_dev *pdev)
{
	struct vfio_pci_core_device *vdev = dev_get_drvdata(&pdev->dev);

	vfio_pci_core_unregister_device(vdev);
	vfio_put_device(&vdev->vdev);
}

/* Override-only: matches only when driver_override names this driver. */
static const struct pci_device_id lab_table[] = {
	{ PCI_DRIVER_OVERRIDE_DEVICE_VFIO(0x8086, 0x10d3) },
	{}
};
MODULE_DEVICE_TABLE(pci, lab_table);

static struct pci_driver lab_driver = {
	.name = KBUILD_MODNAME,
	.id_table = lab_table,
	.probe = lab_probe,
	.remove = lab_remove,
	.err_handler = &vfio_pci_core_err_handlers,
	/* Like vfio-pci: this driver manages DMA itself, so the group stays viable. */
	.driver_managed_dma = true,
};
module_pci_driver(lab_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vfioctl e2e lab: vfio-pci variant for QEMU e1000e, with migration and dirty tracking");
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 7, 0) && LAB_DIRTY_TRACKING
MODULE_IMPORT_NS(IOMMUFD);
#endif
