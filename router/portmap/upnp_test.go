package portmap

import (
	"strings"
	"testing"
)

func soap(action, args string) (string, []byte) {
	return `"urn:schemas-upnp-org:service:WANIPConnection:1#` + action + `"`,
		[]byte(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:` + action +
			` xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">` + args + `</u:` + action + `></s:Body></s:Envelope>`)
}

func TestUPnPControl(t *testing.T) {
	h, _ := newHandler()
	u := &UPnP{Handler: h, UUID: "u"}
	add := func(client string, ext string) (int, string) {
		a, b := soap("AddPortMapping", `<NewRemoteHost></NewRemoteHost><NewExternalPort>`+ext+`</NewExternalPort><NewProtocol>TCP</NewProtocol>`+
			`<NewInternalPort>8080</NewInternalPort><NewInternalClient>`+client+`</NewInternalClient><NewEnabled>1</NewEnabled>`+
			`<NewPortMappingDescription>game</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>`)
		return u.Control(a, b, xbox, t0)
	}
	if code, body := add("192.168.1.50", "3074"); code != 200 || !strings.Contains(body, "AddPortMappingResponse") {
		t.Fatalf("add: %d %s", code, body)
	}
	if code, body := add("192.168.1.99", "3075"); code != 500 || !strings.Contains(body, "<errorCode>606</errorCode>") {
		t.Errorf("for another host: %d %s", code, body)
	}
	// The same port for a second internal mapping of the same client's:
	// renewed; another client's port: a conflict.
	h.Table.Map(Mapping{Proto: "tcp", External: 4000, Client: tunnel2, Internal: 1, By: "natpmp"}, 60e9, t0)
	if code, body := add("192.168.1.50", "4000"); code != 500 || !strings.Contains(body, "<errorCode>718</errorCode>") {
		t.Errorf("another's port: %d %s", code, body)
	}
	a, b := soap("GetGenericPortMappingEntry", `<NewPortMappingIndex>0</NewPortMappingIndex>`)
	if code, body := u.Control(a, b, xbox, t0); code != 200 || !strings.Contains(body, "<NewExternalPort>3074</NewExternalPort>") ||
		!strings.Contains(body, "<NewPortMappingDescription>game</NewPortMappingDescription>") {
		t.Errorf("entry 0: %d %s", code, body)
	}
	a, b = soap("GetGenericPortMappingEntry", `<NewPortMappingIndex>9</NewPortMappingIndex>`)
	if code, body := u.Control(a, b, xbox, t0); code != 500 || !strings.Contains(body, "713") {
		t.Errorf("entry 9: %d %s", code, body)
	}
	a, b = soap("DeletePortMapping", `<NewRemoteHost></NewRemoteHost><NewExternalPort>4000</NewExternalPort><NewProtocol>TCP</NewProtocol>`)
	if code, body := u.Control(a, b, xbox, t0); code != 500 || !strings.Contains(body, "606") {
		t.Errorf("deleting another's: %d %s", code, body)
	}
	a, b = soap("DeletePortMapping", `<NewRemoteHost></NewRemoteHost><NewExternalPort>3074</NewExternalPort><NewProtocol>TCP</NewProtocol>`)
	if code, _ := u.Control(a, b, xbox, t0); code != 200 {
		t.Errorf("delete: %d", code)
	}
	a, b = soap("GetExternalIPAddress", ``)
	if _, body := u.Control(a, b, xbox, t0); !strings.Contains(body, "<NewExternalIPAddress>203.0.113.157</NewExternalIPAddress>") {
		t.Errorf("external address: %s", body)
	}
}

func TestSSDPReply(t *testing.T) {
	search := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
	r := string(SSDPReply([]byte(search), "http://192.168.1.1:5000", "abc"))
	if !strings.Contains(r, "LOCATION: http://192.168.1.1:5000/rootDesc.xml") || !strings.Contains(r, "USN: uuid:abc::urn:schemas-upnp-org:device:InternetGatewayDevice:1") {
		t.Errorf("reply:\n%s", r)
	}
	if SSDPReply([]byte(strings.Replace(search, "InternetGatewayDevice", "MediaRenderer", 1)), "x", "abc") != nil {
		t.Error("answered a search for a media renderer")
	}
}

func FuzzUPnPControl(f *testing.F) {
	a, b := soap("AddPortMapping", `<NewExternalPort>3074</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>1</NewInternalPort><NewInternalClient>192.168.1.50</NewInternalClient>`)
	f.Add(a, b)
	f.Fuzz(func(t *testing.T, action string, body []byte) {
		h, _ := newHandler()
		u := &UPnP{Handler: h, UUID: "u"}
		u.Control(action, body, xbox, t0)
		for _, m := range h.Table.List() {
			if m.Client != xbox {
				t.Fatalf("a mapping for %s", m.Client)
			}
		}
	})
}

func FuzzSSDP(f *testing.F) {
	f.Add([]byte("M-SEARCH * HTTP/1.1\r\nMAN: \"ssdp:discover\"\r\nST: ssdp:all\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) { SSDPReply(b, "http://192.168.1.1:5000", "u") })
}
