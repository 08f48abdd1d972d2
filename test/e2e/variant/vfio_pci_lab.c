// SPDX-License-Identifier: GPL-2.0-only
/*
 * vfio_pci_lab: a test-only vfio-pci variant driver for the vfioctl e2e lab.
 *
 * It adds nothing to vfio_pci_core; it exists so that modules.alias carries a
 * real "vfio_pci:" override-only alias for QEMU's e1000e (8086:10d3), which
 * lets the lab exercise variant selection, module loading and binding.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/vfio.h>
#include <linux/vfio_pci_core.h>

static int lab_open_device(struct vfio_device *core_vdev)
{
	struct vfio_pci_core_device *vdev =
		container_of(core_vdev, struct vfio_pci_core_device, vdev);
	int ret;

	ret = vfio_pci_core_enable(vdev);
	if (ret)
		return ret;
	vfio_pci_core_finish_enable(vdev);
	return 0;
}

static const struct vfio_device_ops lab_ops = {
	.name = "vfio-pci-lab",
	.init = vfio_pci_core_init_dev,
	.release = vfio_pci_core_release_dev,
	.open_device = lab_open_device,
	.close_device = vfio_pci_core_close_device,
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
	.detach_ioas = vfio_iommufd_physical_detach_ioas,
#endif
};

static int lab_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vfio_pci_core_device *vdev;
	int ret;

	vdev = vfio_alloc_device(vfio_pci_core_device, vdev, &pdev->dev,
				 &lab_ops);
	if (IS_ERR(vdev))
		return PTR_ERR(vdev);

	dev_set_drvdata(&pdev->dev, vdev);
	ret = vfio_pci_core_register_device(vdev);
	if (ret)
		vfio_put_device(&vdev->vdev);
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
MODULE_DESCRIPTION("vfioctl e2e lab: vfio-pci variant for QEMU e1000e");
