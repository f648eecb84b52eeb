// Package update owns the image's A/B boot slots.
//
// The EFI system partition holds two unified kernel images, slot A
// (\EFI\routerd\A.efi) and slot B, plus the firmware's fallback path
// (\EFI\BOOT\BOOTX64.EFI), a copy of the committed slot for firmware that
// lost its boot entries. UEFI boot entries point at the slots; BootOrder
// starts with the committed one. An update writes the inactive slot,
// verifies it, and sets BootNext to it: the firmware boots it once. The
// new version runs on probation and is committed (first in BootOrder) only
// when healthy; otherwise the next boot, by reboot or watchdog, is the old
// slot again, because BootNext is spent and BootOrder never changed.
//
// It owns the format of an update (a UKI with a .routerd section naming
// its version and build time), its checks (PE sections, size, SHA-256,
// an ed25519 signature), the EFI variables (efivarfs), the GPT lookup
// that the boot entries' device paths need, and the record of the last
// attempt (state_dir/update.json). Deciding health is the caller's.
package update
