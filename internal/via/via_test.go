package via

import (
	"encoding/json"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, p := range Paths {
		b, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		var got Path
		if err := json.Unmarshal(b, &got); err != nil || got != p {
			t.Errorf("%v: round trip through %s = %v, %v", p, b, got, err)
		}
	}
	if _, err := Parse("lte"); err == nil {
		t.Error(`Parse("lte") succeeded`)
	}
}

// The marks are in rulesets already in the kernel of a running box; a
// restarted routerd must agree with them.
func TestMarksAreStable(t *testing.T) {
	if WAN.Mark() != 1 || VPN.Mark() != 2 || Path(0).Mark() != 0 {
		t.Errorf("marks wan=%d vpn=%d none=%d, want 1, 2, 0", WAN.Mark(), VPN.Mark(), Path(0).Mark())
	}
	if WAN.Mark()&^Mask != 0 || VPN.Mark()&^Mask != 0 {
		t.Error("a mark outside Mask")
	}
}
