// Package vm boots the VM lab: a qemu guest (TCG) running Debian's
// linux-image-amd64, the kernel the image ships, which has what the
// machines that build routerd lack (802.1Q, PPPoE, CAKE, flowtables,
// kernel WireGuard...). The guest's root is the host's own, read-only over
// 9p under a tmpfs overlay: it runs the programs the host installed from
// .ci/packages and the host's compiled test binaries, and writes nothing
// back but to the directories it is given. The host runs commands in it
// one at a time (Run), with their output streamed back.
package vm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/routerd/routerd/images/debian"
	"github.com/routerd/routerd/images/initramfs"
)

// Options say what to boot.
type Options struct {
	Cache  string   // the Debian package cache (the image build's)
	Module string   // the routerd module's root directory, where the guest's init is built
	CPUs   int      // 2 when zero
	Memory string   // "2G" when empty
	RW     []string // host directories the guest may write to (at the same paths)
}

// VM is a booted guest.
type VM struct {
	Kernel string // the guest kernel's version
	CPUs   int

	dir     string
	cmd     *exec.Cmd
	done    chan struct{}
	console Output

	mu   sync.Mutex // one command at a time
	conn net.Conn
	r    *bufio.Reader
}

// bootModules are what the guest's init loads to mount the host's root and
// talk to the host; the rest the lab's tools load on demand, by modprobe.
var bootModules = []string{"virtio_pci", "virtio_rng", "virtio_console", "9pnet_virtio", "9p", "overlay"}

// Boot starts the guest and waits until its agent answers.
func Boot(ctx context.Context, opt Options) (*VM, error) {
	if opt.CPUs == 0 {
		opt.CPUs = 2
	}
	if opt.Memory == "" {
		opt.Memory = "2G"
	}
	k, err := debian.FetchKernel(opt.Cache)
	if err != nil {
		return nil, err
	}
	if err := depmod(k); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "routerd-vm-")
	if err != nil {
		return nil, err
	}
	v := &VM{Kernel: k.Version, CPUs: opt.CPUs, dir: dir, done: make(chan struct{})}
	fail := func(err error) (*VM, error) {
		v.Close()
		return nil, err
	}
	initrd := filepath.Join(dir, "initrd.gz")
	if err := buildInitrd(k, opt.Module, initrd); err != nil {
		return fail(err)
	}
	sock := filepath.Join(dir, "lab.sock")
	appendLine := []string{"console=ttyS0", "panic=-1", "loglevel=4", "routerd.modules=" + k.ModulesDir()}
	args := []string{"-machine", "q35", "-accel", "tcg,thread=multi", "-cpu", "max",
		"-smp", fmt.Sprint(opt.CPUs), "-m", opt.Memory, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", k.Image(), "-initrd", initrd,
		"-chardev", "stdio,id=con,signal=off", "-serial", "chardev:con",
		"-device", "virtio-rng-pci",
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-device", "virtio-serial-pci",
		"-chardev", "socket,id=lab,path=" + sock + ",server=on,wait=off",
		"-device", "virtserialport,chardev=lab,name=" + PortName,
	}
	var rw []string
	for i, d := range opt.RW {
		tag := fmt.Sprintf("rw%d", i)
		args = append(args, "-virtfs", "local,path="+d+",mount_tag="+tag+",security_model=none,multidevs=remap")
		rw = append(rw, tag+":"+d)
	}
	if len(rw) > 0 {
		appendLine = append(appendLine, "routerd.rw="+strings.Join(rw, ","))
	}
	args = append(args, "-append", strings.Join(appendLine, " "))
	v.cmd = exec.Command("qemu-system-x86_64", args...)
	v.cmd.Stdout, v.cmd.Stderr = &v.console, &v.console
	// qemu dies with the test binary, whatever way it ends.
	v.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := v.cmd.Start(); err != nil {
		return fail(fmt.Errorf("start qemu: %w", err))
	}
	go func() { v.cmd.Wait(); close(v.done) }()

	deadline := time.Now().Add(3 * time.Minute)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for {
		if v.conn, err = net.Dial("unix", sock); err == nil {
			break
		}
		select {
		case <-v.done:
			return fail(fmt.Errorf("qemu exited: %s", v.console.String()))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fail(fmt.Errorf("qemu's socket %s: %w", sock, err))
		}
	}
	v.r = newFrameReader(v.conn)
	v.conn.SetReadDeadline(deadline)
	kind, _, err := readFrame(v.r)
	if err != nil || kind != frameReady {
		return fail(fmt.Errorf("the guest's agent did not start (%v); console:\n%s", err, v.console.String()))
	}
	v.conn.SetReadDeadline(time.Time{})
	// qemu has read the kernel and the initramfs, and the socket is
	// connected: nothing of the guest stays on the host's disk.
	os.RemoveAll(v.dir)
	return v, nil
}

// Run runs req in the guest, copying its output to out as it comes.
func (v *VM) Run(req Request, out io.Writer) (Result, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, _ := json.Marshal(req)
	if _, err := v.conn.Write(append(b, '\n')); err != nil {
		return Result{}, fmt.Errorf("vm: send %s: %w", req.Argv[0], err)
	}
	res, err := v.readResult(out)
	if err != nil {
		return Result{}, fmt.Errorf("vm: %s: %w; console:\n%s", req.Argv[0], err, v.Console())
	}
	return res, nil
}

// readResult copies output frames to out until the Result frame.
func (v *VM) readResult(out io.Writer) (Result, error) {
	for {
		kind, p, err := readFrame(v.r)
		if err != nil {
			return Result{}, err
		}
		switch kind {
		case frameOutput:
			out.Write(p)
		case frameResult:
			var res Result
			if err := json.Unmarshal(p, &res); err != nil {
				return Result{}, fmt.Errorf("result: %w", err)
			}
			return res, nil
		}
	}
}

// Console is what the guest's serial console printed so far.
func (v *VM) Console() string { return v.console.String() }

// Close powers the guest off (closing the agent's port ends it) and
// removes what Boot made.
func (v *VM) Close() error {
	if v.conn != nil {
		v.conn.Close()
	}
	if v.cmd != nil && v.cmd.Process != nil {
		select {
		case <-v.done:
		case <-time.After(20 * time.Second):
			syscall.Kill(-v.cmd.Process.Pid, syscall.SIGKILL)
			<-v.done
		}
	}
	return os.RemoveAll(v.dir)
}

// depmod writes the kernel's modules.dep (the package ships none), once, so
// that modprobe in the guest finds what the lab asks for.
func depmod(k *debian.Kernel) error {
	if _, err := os.Stat(filepath.Join(k.ModulesDir(), "modules.dep.bin")); err == nil {
		return nil
	}
	_, err := debian.Run("", nil, "depmod", "-b", k.Root, k.Version)
	return err
}

// buildInitrd writes the guest's initramfs: its init and the modules it
// loads before the host's root is there.
func buildInitrd(k *debian.Kernel, module, out string) error {
	idx, err := debian.IndexModules(k.ModulesDir())
	if err != nil {
		return err
	}
	order, err := idx.Closure(bootModules)
	if err != nil {
		return err
	}
	initBin := filepath.Join(filepath.Dir(out), "init")
	build := exec.Command("go", "build", "-o", initBin, "./internal/lab/vm/guest")
	build.Dir = module
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build the guest's init: %w: %s", err, b)
	}
	bin, err := os.ReadFile(initBin)
	if err != nil {
		return err
	}
	files := []initramfs.File{{Name: "init", Perm: 0o755, Data: bin},
		{Name: "lib/modules/list", Perm: 0o644, Data: []byte(strings.Join(order, "\n") + "\n")}}
	for _, m := range order {
		data, err := os.ReadFile(idx.Path(m))
		if err != nil {
			return err
		}
		files = append(files, initramfs.File{Name: "lib/modules/" + m + ".ko", Perm: 0o644, Data: data})
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err := initramfs.Write(zw, []string{"proc", "sys", "dev"}, files, nil); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return os.WriteFile(out, buf.Bytes(), 0o644)
}

// Output is a process's output: written by the goroutines that copy it,
// read by whoever wants to see it so far (the guest's console, a lab
// process's log).
type Output struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Output) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Output) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
