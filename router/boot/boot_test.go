package boot

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func write(t *testing.T, path, content string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPartitionByName(t *testing.T) {
	sys := t.TempDir()
	write(t, filepath.Join(sys, "vda", "uevent"), "MAJOR=254\nMINOR=0\nDEVNAME=vda\nDEVTYPE=disk\nDISKSEQ=1\n")
	write(t, filepath.Join(sys, "vda1", "uevent"), "MAJOR=254\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=EFI system partition\n")
	write(t, filepath.Join(sys, "vda2", "uevent"), "MAJOR=254\nMINOR=2\nDEVNAME=vda2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=routerd-data\n")
	if got, ok := partitionByName(sys, DataName); !ok || got != "/dev/vda2" {
		t.Errorf("partitionByName = %q, %v; want /dev/vda2", got, ok)
	}
	if got, ok := partitionByName(sys, "other"); ok {
		t.Errorf("found %q for a name no partition has", got)
	}
}

func TestPowerButtons(t *testing.T) {
	devices := filepath.Join(t.TempDir(), "devices")
	write(t, devices, `I: Bus=0019 Vendor=0000 Product=0001 Version=0000
N: Name="Power Button"
P: Phys=LNXPWRBN/button/input0
H: Handlers=kbd event0 
B: EV=3

I: Bus=0011 Vendor=0001 Product=0001 Version=ab41
N: Name="AT Translated Set 2 keyboard"
H: Handlers=sysrq kbd event1 leds 
B: EV=120013

I: Bus=0019 Vendor=0000 Product=0001 Version=0000
N: Name="Power Button"
P: Phys=PNP0C0C/button/input0
H: Handlers=kbd event2 
`)
	if got, want := powerButtons(devices), []string{"/dev/input/event0", "/dev/input/event2"}; !slices.Equal(got, want) {
		t.Errorf("powerButtons = %q, want %q", got, want)
	}
}

func TestCmdlineParam(t *testing.T) {
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	write(t, cmdline, "console=tty0 console=ttyS0,115200n8 routerd.log_level=debug panic=10\n")
	if got := cmdlineParam(cmdline, "routerd.log_level"); got != "debug" {
		t.Errorf("routerd.log_level = %q, want debug", got)
	}
	if got := cmdlineParam(cmdline, "routerd.other"); got != "" {
		t.Errorf("routerd.other = %q, want nothing", got)
	}
}

func TestLoadModulesReportsFailures(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "routerd.list")
	write(t, list, "missing_one\n\n")
	loaded, failed := loadModules(list, dir)
	if loaded != 0 || len(failed) != 1 {
		t.Errorf("loaded %d, failed %q; want the missing module reported", loaded, failed)
	}
}
