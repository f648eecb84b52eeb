// Package images holds what turns routerd into a bootable disk image:
// mkimage (the builder), modules.txt (the kernel modules the image
// loads) and the test that boots the image in qemu on the lab.
//
//	make image [CONFIG=routerd.toml]   images/build/routerd.img
//	make image-test                    boot it in qemu (TCG, OVMF) on the lab
package images
