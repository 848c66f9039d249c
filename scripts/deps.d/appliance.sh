# The appliance image (make image, make image-test) and the .deb (make deps).
want sfdisk fdisk
want mformat mtools
want mkfs.vfat dosfstools
want syslinux syslinux
want cpio cpio
want qemu-system-x86_64 qemu-system-x86
want dpkg-deb dpkg
# Files rather than commands: boot loaders and UEFI firmware.
[ -e /usr/lib/syslinux/mbr/gptmbr.bin ] || need+=(syslinux-common)
[ -e /usr/lib/systemd/boot/efi/systemd-bootx64.efi ] || need+=(systemd-boot-efi)
[ -e /usr/share/OVMF/OVMF_CODE_4M.fd ] || need+=(ovmf)
want help2man help2man
want debootstrap debootstrap
# the .deb test verifies the service units with systemd-analyze (appliance/debtest)
want systemd-analyze systemd
