package debian

import (
	"slices"
	"testing"
)

func TestParseModuleList(t *testing.T) {
	got := ParseModuleList("# comment\nveth bridge # trailing\n\n  tun\n")
	if want := []string{"veth", "bridge", "tun"}; !slices.Equal(got, want) {
		t.Errorf("ParseModuleList = %q, want %q", got, want)
	}
	if got := ModName("kernel/drivers/usb/host/xhci-pci.ko"); got != "xhci_pci" {
		t.Errorf("ModName = %q", got)
	}
}
