package vpn

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/routerd/routerd/internal/lifecycle"
	"github.com/routerd/routerd/netns"
	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"
	"golang.zx2c4.com/wireguard/tun"
)

// userspace is the embedded wireguard-go device serving one TUN.
type userspace struct {
	dev  *device.Device
	uapi net.Listener
	// run holds the UAPI socket's accept loop and one handler per
	// connection (wg(8) asking or configuring); close ends them all.
	run   lifecycle.Group
	mu    sync.Mutex
	conns map[net.Conn]bool
}

// nsBind opens WireGuard's UDP sockets on a thread inside a namespace.
// wireguard-go opens them in Bind.Open, on whatever thread calls it: at Up,
// and again whenever the listen port changes through UAPI, from the UAPI
// handler's goroutine. Without this, a port change would quietly move the
// socket into the main namespace, and tunnel traffic with it.
type nsBind struct {
	conn.Bind
	ns string
}

func (b *nsBind) Open(port uint16) (fns []conn.ReceiveFunc, actual uint16, err error) {
	err = netns.Do(b.ns, func() (err error) {
		fns, actual, err = b.Bind.Open(port)
		return err
	})
	return fns, actual, err
}

// tunFlags are wireguard-go's TUN flags; a persistent TUN must be reopened
// with the same ones.
const tunFlags = unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR

// openTUN opens (creating or attaching to) the persistent TUN device name in
// the calling thread's namespace.
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(tunFlags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETIFF %s: %w", name, err)
	}
	// Persistent: the link, its addresses and routes survive a routerd
	// restart, which then reattaches instead of rebuilding.
	if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("TUNSETPERSIST %s: %w", name, err)
	}
	return fd, nil
}

// createUserspace creates the TUN in the wan namespace, moves it to the vpn
// namespace, and starts wireguard-go on it with its sockets in wan.
func createUserspace(cfg Config, uapiName string) (*userspace, error) {
	var fd int
	err := netns.Do(cfg.WANNS, func() (err error) {
		fd, err = openTUN(cfg.Iface)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create TUN %s in netns %s: %w", cfg.Iface, cfg.WANNS, err)
	}
	wh, err := netns.Handle(cfg.WANNS)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	err = moveLink(wh, cfg.WANNS, cfg.Iface, cfg.VPNNS)
	wh.Close()
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return startUserspace(cfg, fd, uapiName)
}

// attachUserspace reattaches to the persistent TUN left in the vpn
// namespace by a previous run.
func attachUserspace(cfg Config, uapiName string) (*userspace, error) {
	var fd int
	err := netns.Do(cfg.VPNNS, func() (err error) {
		fd, err = openTUN(cfg.Iface)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("reattach TUN %s in netns %s: %w", cfg.Iface, cfg.VPNNS, err)
	}
	return startUserspace(cfg, fd, uapiName)
}

func startUserspace(cfg Config, fd int, uapiName string) (*userspace, error) {
	tdev, _, err := tun.CreateUnmonitoredTUNFromFD(fd)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN %s: %w", cfg.Iface, err)
	}
	log := cfg.Log.With("wireguard", cfg.Iface)
	logger := &device.Logger{
		Verbosef: func(format string, args ...any) { log.Debug(fmt.Sprintf(format, args...)) },
		Errorf:   func(format string, args ...any) { log.Warn(fmt.Sprintf(format, args...)) },
	}
	bind := &nsBind{Bind: conn.NewStdNetBind(), ns: cfg.WANNS}
	var dev *device.Device
	// NewDevice asks the TUN for its MTU by name, which only resolves
	// inside the vpn namespace.
	if err := netns.Do(cfg.VPNNS, func() error {
		dev = device.NewDevice(tdev, bind, logger)
		return nil
	}); err != nil {
		tdev.Close()
		return nil, fmt.Errorf("start WireGuard on %s in netns %s: %w", cfg.Iface, cfg.VPNNS, err)
	}
	file, err := ipc.UAPIOpen(uapiName)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("open UAPI socket %s: %w", uapiName, err)
	}
	l, err := ipc.UAPIListen(uapiName, file)
	if err != nil {
		dev.Close()
		return nil, fmt.Errorf("listen on UAPI socket %s: %w", uapiName, err)
	}
	u := &userspace{dev: dev, uapi: l, conns: map[net.Conn]bool{}}
	u.run.Start(context.Background())
	u.run.Go(func(context.Context) { u.serveUAPI() }) // ends when close closes the listener
	if err := dev.Up(); err != nil {
		u.close()
		return nil, fmt.Errorf("bring up WireGuard device: %w", err)
	}
	return u, nil
}

// serveUAPI hands each UAPI connection to the device until the listener
// closes.
func (u *userspace) serveUAPI() {
	for {
		c, err := u.uapi.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		if u.conns == nil { // closed meanwhile
			u.mu.Unlock()
			c.Close()
			return
		}
		u.conns[c] = true
		u.mu.Unlock()
		u.run.Go(func(context.Context) { // ends when the client or close closes c
			u.dev.IpcHandle(c) // it closes c
			u.mu.Lock()
			delete(u.conns, c)
			u.mu.Unlock()
		})
	}
}

// close stops the device and its UAPI socket and waits for their
// goroutines (a UAPI client that hangs is cut off); the persistent TUN
// link stays.
func (u *userspace) close() {
	u.uapi.Close()
	u.mu.Lock()
	for c := range u.conns {
		c.Close()
	}
	u.conns = nil
	u.mu.Unlock()
	u.dev.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = u.run.Stop(ctx) // every goroutine's socket is closed: they end at once
}
