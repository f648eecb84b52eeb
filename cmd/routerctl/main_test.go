package main

import (
	"os/exec"
	"strings"
	"testing"
)

// routerctl is a thin client: it links the status types and the socket
// client, not the machinery that fills them. A dependency on netlink,
// nftables or WireGuard here means a type crept back into the wrong place.
func TestThinClient(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var ours []string
	for _, pkg := range strings.Fields(string(out)) {
		for _, heavy := range []string{"vishvananda", "google/nftables", "wireguard", "mdlayher", "miekg", "insomniacslk", "BurntSushi"} {
			if strings.Contains(pkg, heavy) {
				t.Errorf("routerctl depends on %s", pkg)
			}
		}
		if strings.HasPrefix(pkg, "github.com/routerd/routerd/") {
			ours = append(ours, strings.TrimPrefix(pkg, "github.com/routerd/routerd/"))
		}
	}
	if got, want := strings.Join(ours, " "), "router/control router/status router/ctl cmd/routerctl"; got != want {
		t.Errorf("routerctl's own packages = %s, want %s", got, want)
	}
}
