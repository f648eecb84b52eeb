package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	got, err := parseList(strings.NewReader("# comment\nping\n\ndig  # from dnsutils\nping\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dig", "ping"}; !slices.Equal(got, want) {
		t.Errorf("parseList = %v, want %v", got, want)
	}
}

func TestOwnerOf(t *testing.T) {
	for _, tc := range []struct{ out, path, want string }{
		{"iproute2: /bin/ip\n", "/bin/ip", "iproute2"},
		{"libc-bin:amd64: /usr/bin/getent\n", "/usr/bin/getent", "libc-bin"},
		{"diversion by dash from: /bin/sh\ndash: /bin/sh\n", "/bin/sh", "dash"},
		{"util-linux, mount: /usr/bin\n", "/usr/bin/nsenter", ""},
	} {
		if got := ownerOf(tc.out, tc.path); got != tc.want {
			t.Errorf("ownerOf(%q, %s) = %q, want %q", tc.out, tc.path, got, tc.want)
		}
	}
}
