package portmap

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// UPnP IGD (the Internet Gateway Device protocol the consoles speak):
// SSDP answers a search with where the description is; the description
// names one WANIPConnection service (v1 and v2 actions); its SOAP control
// maps ports in the same table as NAT-PMP and PCP.

// UPnPPort is where the description and control are served (TCP).
const UPnPPort = 5000

const (
	ssdpIGD1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	svcIP1   = "urn:schemas-upnp-org:service:WANIPConnection:1"
	svcIP2   = "urn:schemas-upnp-org:service:WANIPConnection:2"
	svcIFC   = "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1"
)

// SSDPReply answers an M-SEARCH (nil: not one, or not for the gateway),
// pointing at the description on location (http://ADDR:PORT).
func SSDPReply(req []byte, location, uuid string) []byte {
	r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(req)))
	if err != nil || r.Method != "M-SEARCH" || r.Header.Get("Man") != `"ssdp:discover"` {
		return nil
	}
	st := r.Header.Get("St")
	switch st {
	case "ssdp:all", "upnp:rootdevice", ssdpIGD1, "urn:schemas-upnp-org:device:WANDevice:1",
		"urn:schemas-upnp-org:device:WANConnectionDevice:1", svcIP1, svcIFC, "uuid:" + uuid:
	default:
		return nil
	}
	if st == "ssdp:all" {
		st = ssdpIGD1
	}
	usn := "uuid:" + uuid
	if !strings.HasPrefix(st, "uuid:") {
		usn += "::" + st
	}
	return []byte(fmt.Sprintf("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: %s\r\nUSN: %s\r\nEXT:\r\nSERVER: Linux UPnP/1.1 routerd\r\nLOCATION: %s/rootDesc.xml\r\n\r\n",
		st, usn, location))
}

// rootDesc is the gateway's description: InternetGatewayDevice:1 with its
// WANDevice and WANConnectionDevice, the services under them.
func rootDesc(uuid string) string {
	return `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0"><specVersion><major>1</major><minor>0</minor></specVersion>
<device><deviceType>` + ssdpIGD1 + `</deviceType><friendlyName>routerd</friendlyName><manufacturer>routerd</manufacturer>
<modelName>routerd</modelName><UDN>uuid:` + uuid + `</UDN>
<serviceList/>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><friendlyName>WAN</friendlyName>
<manufacturer>routerd</manufacturer><modelName>routerd</modelName><UDN>uuid:` + uuid + `-wan</UDN>
<serviceList><service><serviceType>` + svcIFC + `</serviceType><serviceId>urn:upnp-org:serviceId:WANCommonIFC1</serviceId>
<SCPDURL>/ifc.xml</SCPDURL><controlURL>/ctl/IFC</controlURL><eventSubURL>/evt/IFC</eventSubURL></service></serviceList>
<deviceList><device><deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><friendlyName>WAN connection</friendlyName>
<manufacturer>routerd</manufacturer><modelName>routerd</modelName><UDN>uuid:` + uuid + `-conn</UDN>
<serviceList><service><serviceType>` + svcIP1 + `</serviceType><serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<SCPDURL>/ipconn.xml</SCPDURL><controlURL>/ctl/IPConn</controlURL><eventSubURL>/evt/IPConn</eventSubURL></service></serviceList>
</device></deviceList></device></deviceList></device></root>`
}

// UPnP errors (UPnP IGD WANIPConnection:2 §2.4).
const (
	upnpInvalidArgs   = 402
	upnpNotAuthorized = 606
	upnpInvalidIndex  = 713
	upnpNoSuchEntry   = 714
	upnpConflict      = 718
	upnpNoResources   = 728 // NoPortMapsAvailable
	upnpActionFailed  = 501
)

// UPnP serves the description and the SOAP control. Start and External
// are as the Handler's.
type UPnP struct {
	Handler *Handler
	UUID    string
}

// ServeHTTP answers one HTTP request; the client is the connection's
// source address.
func (u *UPnP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/rootDesc.xml":
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprint(w, rootDesc(u.UUID))
	case r.Method == http.MethodGet && (r.URL.Path == "/ipconn.xml" || r.URL.Path == "/ifc.xml"):
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprint(w, `<?xml version="1.0"?><scpd xmlns="urn:schemas-upnp-org:service-1-0"><specVersion><major>1</major><minor>0</minor></specVersion><actionList/><serviceStateTable/></scpd>`)
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/ctl/"):
		ap, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil {
			http.Error(w, "", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		status, resp := u.Control(r.Header.Get("SOAPAction"), body, ap.Addr().Unmap(), time.Now())
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		w.WriteHeader(status)
		fmt.Fprint(w, resp)
	default:
		http.NotFound(w, r)
	}
}

// Control runs one SOAP action for client and returns the HTTP status and
// the SOAP envelope to answer with.
func (u *UPnP) Control(soapAction string, body []byte, client netip.Addr, now time.Time) (int, string) {
	svc, action, ok := strings.Cut(strings.Trim(soapAction, `"`), "#")
	if !ok {
		return fault(upnpInvalidArgs, "Invalid Args")
	}
	args, err := soapArgs(body, action)
	if err != nil {
		return fault(upnpInvalidArgs, "Invalid Args")
	}
	h := u.Handler
	out := func(kv ...string) (int, string) {
		var b strings.Builder
		fmt.Fprintf(&b, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="%s">`, action, svc)
		for i := 0; i+1 < len(kv); i += 2 {
			b.WriteString("<" + kv[i] + ">")
			_ = xml.EscapeText(&b, []byte(kv[i+1])) // into a strings.Builder, which does not fail
			b.WriteString("</" + kv[i] + ">")
		}
		fmt.Fprintf(&b, "</u:%sResponse></s:Body></s:Envelope>", action)
		return http.StatusOK, b.String()
	}
	switch action {
	case "GetExternalIPAddress":
		ext := ""
		if a := h.External(); a.IsValid() {
			ext = a.String()
		}
		return out("NewExternalIPAddress", ext)
	case "GetStatusInfo":
		st := "Connected"
		if !h.External().IsValid() {
			st = "Disconnected"
		}
		return out("NewConnectionStatus", st, "NewLastConnectionError", "ERROR_NONE", "NewUptime", strconv.Itoa(int(h.epoch(now))))
	case "GetConnectionTypeInfo":
		return out("NewConnectionType", "IP_Routed", "NewPossibleConnectionTypes", "IP_Routed")
	case "GetCommonLinkProperties":
		return out("NewWANAccessType", "Ethernet", "NewLayer1UpstreamMaxBitRate", "0", "NewLayer1DownstreamMaxBitRate", "0", "NewPhysicalLinkStatus", "Up")
	case "AddPortMapping", "AddAnyPortMapping":
		ext, err1 := strconv.ParseUint(args["NewExternalPort"], 10, 16)
		in, err2 := strconv.ParseUint(args["NewInternalPort"], 10, 16)
		lease, err3 := strconv.ParseUint(or0(args["NewLeaseDuration"]), 10, 32)
		proto := strings.ToLower(args["NewProtocol"])
		target, err4 := netip.ParseAddr(args["NewInternalClient"])
		if err1 != nil || err2 != nil || err3 != nil || err4 != nil || in == 0 || (proto != "tcp" && proto != "udp") {
			return fault(upnpInvalidArgs, "Invalid Args")
		}
		if target.Unmap() != client {
			return fault(upnpNotAuthorized, "Action not authorized") // a device maps only to itself
		}
		life := time.Duration(lease) * time.Second
		if lease == 0 {
			life = h.Table.policy.MaxLifetime // "as long as possible" (v1's infinite)
		}
		req := Mapping{Proto: proto, External: uint16(ext), Client: client, Internal: uint16(in), By: "upnp", Description: args["NewPortMappingDescription"]}
		mapPort := h.Table.MapExact
		if action == "AddAnyPortMapping" {
			mapPort = h.Table.Map
		}
		m, err := mapPort(req, life, now)
		switch {
		case errors.Is(err, ErrNoResources):
			return fault(upnpNoResources, "NoPortMapsAvailable")
		case errors.Is(err, ErrConflict):
			return fault(upnpConflict, "ConflictInMappingEntry")
		case err != nil:
			return fault(upnpNotAuthorized, "Action not authorized")
		case action == "AddAnyPortMapping":
			return out("NewReservedPort", strconv.Itoa(int(m.External)))
		}
		return out()
	case "DeletePortMapping":
		ext, err := strconv.ParseUint(args["NewExternalPort"], 10, 16)
		proto := strings.ToLower(args["NewProtocol"])
		if err != nil {
			return fault(upnpInvalidArgs, "Invalid Args")
		}
		m, ok := h.Table.Get(proto, uint16(ext))
		switch {
		case !ok:
			return fault(upnpNoSuchEntry, "NoSuchEntryInArray")
		case m.Client != client:
			return fault(upnpNotAuthorized, "Action not authorized")
		}
		h.Table.Delete(proto, uint16(ext))
		return out()
	case "GetSpecificPortMappingEntry":
		ext, err := strconv.ParseUint(args["NewExternalPort"], 10, 16)
		if err != nil {
			return fault(upnpInvalidArgs, "Invalid Args")
		}
		m, ok := h.Table.Get(strings.ToLower(args["NewProtocol"]), uint16(ext))
		if !ok {
			return fault(upnpNoSuchEntry, "NoSuchEntryInArray")
		}
		return out("NewInternalPort", strconv.Itoa(int(m.Internal)), "NewInternalClient", m.Client.String(), "NewEnabled", "1",
			"NewPortMappingDescription", m.Description, "NewLeaseDuration", strconv.Itoa(int(m.Expires.Sub(now)/time.Second)))
	case "GetGenericPortMappingEntry":
		i, err := strconv.Atoi(args["NewPortMappingIndex"])
		ms := h.Table.List()
		if err != nil || i < 0 || i >= len(ms) {
			return fault(upnpInvalidIndex, "SpecifiedArrayIndexInvalid")
		}
		m := ms[i]
		return out("NewRemoteHost", "", "NewExternalPort", strconv.Itoa(int(m.External)), "NewProtocol", strings.ToUpper(m.Proto),
			"NewInternalPort", strconv.Itoa(int(m.Internal)), "NewInternalClient", m.Client.String(), "NewEnabled", "1",
			"NewPortMappingDescription", m.Description, "NewLeaseDuration", strconv.Itoa(int(m.Expires.Sub(now)/time.Second)))
	}
	return fault(401, "Invalid Action")
}

func or0(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func fault(code int, desc string) (int, string) {
	return http.StatusInternalServerError, fmt.Sprintf(`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>UPnPError</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>%d</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, code, desc)
}

// soapArgs reads the action's arguments (the action element's children,
// whatever their namespace prefixes) from a SOAP envelope.
func soapArgs(body []byte, action string) (map[string]string, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	args := map[string]string{}
	depth, in := 0, -1
	var cur string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case in < 0 && t.Name.Local == action:
				in = depth
			case in >= 0 && depth == in+1:
				cur = t.Name.Local
				args[cur] = ""
			}
		case xml.CharData:
			if cur != "" {
				args[cur] += string(t)
			}
		case xml.EndElement:
			if depth == in+1 {
				cur = ""
			}
			depth--
		}
		if len(args) > 32 {
			return nil, fmt.Errorf("too many arguments")
		}
	}
	if in < 0 {
		return nil, fmt.Errorf("no %s element", action)
	}
	for k, v := range args {
		args[k] = strings.TrimSpace(v)
	}
	return args, nil
}
