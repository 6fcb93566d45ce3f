// cni-harness drives CNI plugins through containerd's own client library, the way containerd 1.6/1.7's CRI plugin
// does (../shared/reference/vpc-cni.md §16): go-cni (Debian golang-github-containerd-go-cni-dev 1.1.7) over libcni
// (golang-github-appc-cni-dev 1.1.2), the versions containerd 1.6/1.7 vendor.
//
// What it does as containerd does:
//   - one go-cni instance: gocni.New(WithMinNetworkCount(2), WithPluginConfDir, WithPluginMaxConfNum, WithPluginDir),
//     then Load(WithLoNetwork, WithDefaultConf): the loopback network plus the first file (sorted) of the conf dir
//     ending .conf, .conflist or .json;
//   - Setup (not SetupSerially): the loopback ADD and the eth0 chain's ADD run in parallel;
//   - CNI_ARGS from the pod labels (IgnoreUnknown=1, K8S_POD_NAMESPACE, K8S_POD_NAME, K8S_POD_INFRA_CONTAINER_ID,
//     K8S_POD_UID; go-cni iterates a map, so the order varies), capabilities io.kubernetes.cri.pod-annotations always,
//     portMappings when the pod has any (host port > 0, protocol lower case), cgroupPath with -runtime 1.7 and a
//     cgroup parent; libcni passes a capability in runtimeConfig only to a plugin that declares it;
//   - the sandbox's address is taken from the eth0 interface of the result (no IP on eth0 fails the sandbox, as
//     containerd's "failed to find network info for sandbox"); IPv4 first;
//   - a failed Setup is followed by a Remove with the same arguments (containerd's cleanup DEL);
//   - Remove with the same labels and capabilities; libcni gives each chain its cached ADD result
//     (/var/lib/cni/results/<network>-<id>-<ifname>) as prevResult and deletes that file after the DEL; an empty
//     netns path is what containerd sends when the sandbox's netns is already gone.
//
// Usage (flags before the subcommand):
//
//	cni-harness [flags] load                          the networks go-cni loaded, as JSON
//	cni-harness [flags] setup ID NETNS                ADD, as JSON (exit 1 on failure, after the cleanup DEL)
//	cni-harness [flags] check ID NETNS                CHECK of the pod network's chain through libcni, with the
//	                                                  cached result (containerd itself never sends CHECK)
//	cni-harness [flags] remove ID NETNS|-             DEL ("-": no netns, as after the sandbox's netns is gone)
//	cni-harness [flags] bench N CONCURRENCY PREFIX    ADD N pods (netns /var/run/netns/PREFIX0 ...), then DEL them,
//	                                                  CONCURRENCY at a time; latencies per operation (p50/p99 by
//	                                                  nearest rank) as JSON
//	cni-harness [flags] cycles N CONCURRENCY PREFIX   N ADD/DEL cycles, CONCURRENCY at a time, each in a network
//	                                                  namespace of its own created and deleted as containerd does
//	                                                  (/var/run/netns/PREFIX<i>, a bind mount of a thread's
//	                                                  unshared namespace); after each ADD failure and each DEL the
//	                                                  host veth must be gone and the pod's namespace hold only lo
//	                                                  and no neighbour, and no 512/1536 rule name its address;
//	                                                  -kill-at K prints "@kill" and "@restart" lines (runCycles)
//
// Everything printed on stdout is one JSON object (after cycles' "@" lines); plugins' stderr passes through.
package main

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gocni "github.com/containerd/go-cni"
	cnitypes "github.com/containernetworking/cni/pkg/types"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

var (
	confDir      = flag.String("conf-dir", "/etc/cni/net.d", "CNI config dir (containerd: plugins.cri.cni.conf_dir)")
	binDirs      = flag.String("bin-dir", "/opt/cni/bin", "plugin dirs, ':'-separated (containerd: plugins.cri.cni.bin_dir)")
	maxConfNum   = flag.Int("max-conf-num", 1, "config files loaded (containerd: plugins.cri.cni.max_conf_num)")
	runtimeVer   = flag.String("runtime", "1.6", "containerd behaviour to follow: 1.6 or 1.7 (1.7 adds the cgroupPath capability)")
	podNamespace = flag.String("pod-namespace", "default", "K8S_POD_NAMESPACE")
	podName      = flag.String("pod-name", "", "K8S_POD_NAME (default: harness-<first 8 characters of the id>)")
	podUID       = flag.String("pod-uid", "", "K8S_POD_UID (default: derived from the id, so setup and remove agree)")
	cgroupParent = flag.String("cgroup-parent", "", "the pod's cgroup parent (sent as cgroupPath with -runtime 1.7)")
	killAt       = flag.Int("kill-at", -1, "cycles: print \"@kill\" when cycle K starts (see runCycles)")
	held         = flag.Int("held", 16, "cycles, sequential with -kill-at: pods added before \"@kill\" and deleted after")
	outage       = flag.Int("outage", 64, "cycles with -kill-at: cycles completed after \"@kill\" before \"@restart\"")
	goneEvery    = flag.Int("gone-every", 0, "cycles: every Kth DEL comes after the pod's namespace is deleted (empty CNI_NETNS)")
	vethPrefix   = flag.String("veth-prefix", "eni", "cycles: the host veth's prefix (aws-cni's name), \"\" for no host check")
	timeout      = flag.Duration("timeout", 4*time.Minute, "deadline of one operation (kubelet gives RunPodSandbox 4 min)")
	ports        multiFlag
	annotations  multiFlag
)

func init() {
	flag.Var(&ports, "port", "port mapping [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO] (repeatable)")
	flag.Var(&annotations, "annotation", "pod annotation KEY=VALUE (repeatable)")
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "cni-harness: "+format+"\n", args...)
	os.Exit(2)
}

func emit(v interface{}) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		fail("cannot print the result: %v", err)
	}
}

// newCNI builds and loads go-cni as containerd's CRI plugin does at start-up.
func newCNI() (gocni.CNI, error) {
	dirs := strings.Split(*binDirs, ":")
	c, err := gocni.New(
		gocni.WithMinNetworkCount(2), // containerd: loopback + the pod network
		gocni.WithPluginConfDir(*confDir),
		gocni.WithPluginMaxConfNum(*maxConfNum),
		gocni.WithPluginDir(dirs),
	)
	if err != nil {
		return nil, fmt.Errorf("go-cni init: %w", err)
	}
	if err := c.Load(gocni.WithLoNetwork, gocni.WithDefaultConf); err != nil {
		return nil, err
	}
	return c, nil
}

func parsePort(spec string) (gocni.PortMapping, error) {
	var pm gocni.PortMapping
	proto := "tcp"
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		proto = strings.ToLower(spec[i+1:])
		spec = spec[:i]
	}
	parts := strings.Split(spec, ":")
	if len(parts) == 3 {
		pm.HostIP = parts[0]
		parts = parts[1:]
	}
	if len(parts) != 2 {
		return pm, fmt.Errorf("port mapping %q: want [HOSTIP:]HOSTPORT:CONTAINERPORT[/PROTO]", spec)
	}
	host, err1 := strconv.Atoi(parts[0])
	cont, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return pm, fmt.Errorf("port mapping %q: ports must be numbers", spec)
	}
	pm.HostPort, pm.ContainerPort, pm.Protocol = int32(host), int32(cont), proto
	return pm, nil
}

// podUIDFor is a stable UUID-shaped value per container id, so a later `remove` sends the labels `setup` sent.
func podUIDFor(id string) string {
	s := sha256.Sum256([]byte(id))
	h := hex.EncodeToString(s[:16])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// namespaceOpts are containerd's cniNamespaceOpts for a pod with this id: labels, annotations, port mappings,
// cgroupPath (1.7).
func namespaceOpts(id, name, uid string, portMaps []gocni.PortMapping, ann map[string]string) []gocni.NamespaceOpts {
	labels := map[string]string{
		"K8S_POD_NAMESPACE":          *podNamespace,
		"K8S_POD_NAME":               name,
		"K8S_POD_INFRA_CONTAINER_ID": id,
		"K8S_POD_UID":                uid,
		"IgnoreUnknown":              "1",
	}
	opts := []gocni.NamespaceOpts{
		gocni.WithLabels(labels),
		gocni.WithCapability("io.kubernetes.cri.pod-annotations", ann),
	}
	var kept []gocni.PortMapping
	for _, pm := range portMaps {
		if pm.HostPort > 0 { // containerd skips mappings without a host port
			kept = append(kept, pm)
		}
	}
	if len(kept) > 0 {
		opts = append(opts, gocni.WithCapabilityPortMap(kept))
	}
	if *runtimeVer == "1.7" && *cgroupParent != "" {
		opts = append(opts, gocni.WithCapability("cgroupPath", *cgroupParent))
	}
	return opts
}

type pod struct {
	id, netns, name, uid string
	opts                 []gocni.NamespaceOpts
}

func podFor(id, netns string, portMaps []gocni.PortMapping, ann map[string]string) pod {
	name, uid := *podName, *podUID
	if name == "" {
		short := id
		if len(short) > 8 {
			short = short[:8]
		}
		name = "harness-" + short
	}
	if uid == "" {
		uid = podUIDFor(id)
	}
	if netns == "-" {
		netns = ""
	}
	return pod{id: id, netns: netns, name: name, uid: uid, opts: namespaceOpts(id, name, uid, portMaps, ann)}
}

type ifaceOut struct {
	Mac     string   `json:"mac,omitempty"`
	Sandbox string   `json:"sandbox,omitempty"`
	IPs     []string `json:"ips"`
}

type setupOut struct {
	Op           string              `json:"op"`
	ID           string              `json:"id"`
	NetNS        string              `json:"netns"`
	OK           bool                `json:"ok"`
	Ms           float64             `json:"ms"`
	IP           string              `json:"ip,omitempty"`
	AdditionalIP []string            `json:"additional_ips,omitempty"`
	Interfaces   map[string]ifaceOut `json:"interfaces,omitempty"`
	Raw          json.RawMessage     `json:"raw,omitempty"`
	Error        string              `json:"error,omitempty"`
	CleanupError *string             `json:"cleanup_error,omitempty"`
	CleanupMs    float64             `json:"cleanup_ms,omitempty"`
}

func ms(d time.Duration) float64 { return math.Round(float64(d.Microseconds())) / 1000 }

// sandboxIPs is containerd's check and choice: the default interface (eth0) must carry an address; IPv4 first.
func sandboxIPs(r *gocni.Result) (string, []string, error) {
	cfg, ok := r.Interfaces["eth0"]
	if !ok || len(cfg.IPConfigs) == 0 {
		return "", nil, errors.New("failed to find network info for sandbox: no IP on eth0 in the result")
	}
	primary := -1
	for i, c := range cfg.IPConfigs {
		if c.IP.To4() != nil {
			primary = i
			break
		}
	}
	if primary < 0 {
		primary = 0
	}
	var rest []string
	for i, c := range cfg.IPConfigs {
		if i != primary {
			rest = append(rest, c.IP.String())
		}
	}
	return cfg.IPConfigs[primary].IP.String(), rest, nil
}

func doSetup(c gocni.CNI, p pod, full bool) setupOut {
	out := setupOut{Op: "setup", ID: p.id, NetNS: p.netns}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	start := time.Now()
	res, err := c.Setup(ctx, p.id, p.netns, p.opts...)
	out.Ms = ms(time.Since(start))
	cancel()
	if err == nil {
		out.IP, out.AdditionalIP, err = sandboxIPs(res)
	}
	if err != nil {
		out.Error = err.Error()
		// containerd's cleanup after a failed sandbox network setup: DEL with a fresh deadline.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		start := time.Now()
		cerr := c.Remove(ctx, p.id, p.netns, p.opts...)
		out.CleanupMs = ms(time.Since(start))
		cancel()
		s := ""
		if cerr != nil {
			s = cerr.Error()
		}
		out.CleanupError = &s
		return out
	}
	out.OK = true
	if full {
		out.Interfaces = map[string]ifaceOut{}
		for name, cfg := range res.Interfaces {
			io := ifaceOut{Mac: cfg.Mac, Sandbox: cfg.Sandbox, IPs: []string{}}
			for _, ipc := range cfg.IPConfigs {
				io.IPs = append(io.IPs, ipc.IP.String())
			}
			out.Interfaces[name] = io
		}
		if raw, err := json.Marshal(res.Raw()); err == nil {
			out.Raw = raw
		}
	}
	return out
}

type simpleOut struct {
	Op    string  `json:"op"`
	ID    string  `json:"id"`
	NetNS string  `json:"netns"`
	OK    bool    `json:"ok"`
	Ms    float64 `json:"ms"`
	Error string  `json:"error,omitempty"`
}

func doRemove(c gocni.CNI, p pod) simpleOut {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	err := c.Remove(ctx, p.id, p.netns, p.opts...)
	out := simpleOut{Op: "remove", ID: p.id, NetNS: p.netns, OK: err == nil, Ms: ms(time.Since(start))}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

// doCheck sends CHECK to the pod network's chain only: go-cni's Check walks every loaded network, and the loopback
// network it adds is CNI 0.3.1, which has no CHECK (libcni refuses it). So a second instance without loopback.
func doCheck(p pod) simpleOut {
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	start := time.Now()
	c, err := gocni.New(gocni.WithMinNetworkCount(1), gocni.WithPluginConfDir(*confDir),
		gocni.WithPluginMaxConfNum(*maxConfNum), gocni.WithPluginDir(strings.Split(*binDirs, ":")))
	if err == nil {
		err = c.Load(gocni.WithDefaultConf)
	}
	if err == nil {
		err = c.Check(ctx, p.id, p.netns, p.opts...)
	}
	out := simpleOut{Op: "check", ID: p.id, NetNS: p.netns, OK: err == nil, Ms: ms(time.Since(start))}
	if err != nil {
		out.Error = err.Error()
	}
	return out
}

type stats struct {
	N    int     `json:"n"`
	P50  float64 `json:"p50_ms"`
	P99  float64 `json:"p99_ms"`
	Min  float64 `json:"min_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// summarize uses nearest-rank percentiles (the smallest sample with at least q of the samples at or below it).
func summarize(samples []float64) stats {
	if len(samples) == 0 {
		return stats{}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	rank := func(q float64) float64 {
		i := int(math.Ceil(q*float64(len(s)))) - 1
		if i < 0 {
			i = 0
		}
		return s[i]
	}
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return stats{N: len(s), P50: rank(0.50), P99: rank(0.99), Min: s[0], Max: s[len(s)-1],
		Mean: math.Round(sum/float64(len(s))*1000) / 1000}
}

type benchOut struct {
	Op          string    `json:"op"`
	N           int       `json:"n"`
	Concurrency int       `json:"concurrency"`
	Setup       stats     `json:"setup"`
	Remove      stats     `json:"remove"`
	SetupWallS  float64   `json:"setup_wall_s"`
	RemoveWallS float64   `json:"remove_wall_s"`
	SetupMs     []float64 `json:"setup_samples_ms"`
	RemoveMs    []float64 `json:"remove_samples_ms"`
	IPs         int       `json:"distinct_ips"`
	MaxRSSKiB   int64     `json:"children_maxrss_kib"`
	Errors      []string  `json:"errors"`
}

// runPool runs f(0..n-1), `conc` at a time, and returns the wall time.
func runPool(n, conc int, f func(i int)) time.Duration {
	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	return time.Since(start)
}

// benchID is a bench pod's sandbox id: 64 hex characters, as containerd's, derived from its netns path so that the
// runner knows them and can remove their results-cache files however the bench ends.
func benchID(netns string) string {
	sum := sha256.Sum256([]byte("bench:" + netns))
	return hex.EncodeToString(sum[:])
}

func doBench(c gocni.CNI, n, conc int, prefix string, portMaps []gocni.PortMapping, ann map[string]string) benchOut {
	pods := make([]pod, n)
	for i := range pods {
		var pm []gocni.PortMapping
		for _, m := range portMaps { // each pod gets its own host ports: base + i
			m.HostPort += int32(i)
			pm = append(pm, m)
		}
		netns := fmt.Sprintf("/var/run/netns/%s%d", prefix, i)
		pods[i] = podFor(benchID(netns), netns, pm, ann)
	}
	out := benchOut{Op: "bench", N: n, Concurrency: conc, SetupMs: make([]float64, n), RemoveMs: make([]float64, n),
		Errors: []string{}}
	var mu sync.Mutex
	ips := map[string]bool{}
	okSetup := make([]bool, n)
	out.SetupWallS = runPool(n, conc, func(i int) {
		r := doSetup(c, pods[i], false)
		mu.Lock()
		defer mu.Unlock()
		out.SetupMs[i] = r.Ms
		if r.OK {
			okSetup[i] = true
			ips[r.IP] = true
		} else {
			out.Errors = append(out.Errors, fmt.Sprintf("setup %s: %s", pods[i].netns, r.Error))
		}
	}).Seconds()
	out.RemoveWallS = runPool(n, conc, func(i int) {
		r := doRemove(c, pods[i])
		mu.Lock()
		defer mu.Unlock()
		out.RemoveMs[i] = r.Ms
		if !r.OK {
			out.Errors = append(out.Errors, fmt.Sprintf("remove %s: %s", pods[i].netns, r.Error))
		}
	}).Seconds()
	var setupOK []float64
	for i, v := range out.SetupMs {
		if okSetup[i] {
			setupOK = append(setupOK, v)
		}
	}
	out.Setup, out.Remove, out.IPs = summarize(setupOK), summarize(out.RemoveMs), len(ips)
	// RUSAGE_CHILDREN's peak RSS. Not the plugins': Go starts them with clone(CLONE_VM|CLONE_VFORK), so each child
	// runs on the harness's memory until its exec and the kernel counts that peak as the child's. The runner measures
	// each plugin under GNU time instead.
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		out.MaxRSSKiB = ru.Maxrss
	}
	return out
}

// ---------------------------------------------------------------------------------------------------------------
// cycles: ADD/DEL cycles, each pod in a namespace of its own, and what each one leaves behind.

// newNetns creates a network namespace bound at path, as containerd's pkg/netns does: a thread unshares its network
// namespace, which is bind-mounted onto an empty file; the thread is never given back (it ends with its goroutine).
func newNetns(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return err
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread leaves this namespace only by ending
		if err := syscall.Unshare(syscall.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid())
		if err := syscall.Mount(src, path, "none", syscall.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind %s: %w", src, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// deleteNetns unmounts and removes a namespace's file, as containerd does after the sandbox's DEL.
func deleteNetns(path string) error {
	if err := syscall.Unmount(path, syscall.MNT_DETACH); err != nil && err != syscall.EINVAL && err != syscall.ENOENT {
		return fmt.Errorf("unmount %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return err
	}
	return nil
}

// sysSetns is setns(2)'s number (Go 1.19's syscall package does not name it).
func sysSetns() uintptr {
	if runtime.GOARCH == "arm64" {
		return 268
	}
	return 308 // amd64
}

// inNetns runs f on a thread that entered the namespace at path, then returns the thread to the harness's namespace
// (or lets it end, should that fail).
func inNetns(path string, f func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		if _, _, e := syscall.RawSyscall(sysSetns(), target.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, e)
			return
		}
		ferr := f()
		if _, _, e := syscall.RawSyscall(sysSetns(), self.Fd(), syscall.CLONE_NEWNET, 0); e == 0 {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

// dump is one rtnetlink dump of this thread's namespace: the messages of type want.
func dump(request, family, want int) ([]syscall.NetlinkMessage, error) {
	raw, err := syscall.NetlinkRIB(request, family)
	if err != nil {
		return nil, err
	}
	msgs, err := syscall.ParseNetlinkMessage(raw)
	if err != nil {
		return nil, err
	}
	var kept []syscall.NetlinkMessage
	for _, m := range msgs {
		if int(m.Header.Type) == want {
			kept = append(kept, m)
		}
	}
	return kept, nil
}

// podLeftovers: what a pod's namespace still holds besides lo (links; neighbour entries of any family).
func podLeftovers(path string) []string {
	var found []string
	err := inNetns(path, func() error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			if i.Name != "lo" {
				found = append(found, "link "+i.Name+" in the pod")
			}
		}
		neigh, err := dump(syscall.RTM_GETNEIGH, syscall.AF_UNSPEC, syscall.RTM_NEWNEIGH)
		if err != nil {
			return err
		}
		if len(neigh) > 0 {
			found = append(found, fmt.Sprintf("%d neighbour entries in the pod", len(neigh)))
		}
		return nil
	})
	if err != nil {
		found = append(found, "cannot look into the pod's namespace: "+err.Error())
	}
	return found
}

// podRules: the priority 512/1536 rules of this (the node's) namespace that name ip (docs/cni.md §3).
func podRules(ip string) ([]string, error) {
	target := net.ParseIP(ip).To4()
	if target == nil {
		return nil, nil
	}
	msgs, err := dump(syscall.RTM_GETRULE, syscall.AF_INET, syscall.RTM_NEWRULE)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, m := range msgs {
		if len(m.Data) < 12 {
			continue
		}
		var prio uint32
		var src, dst net.IP
		for b := m.Data[12:]; len(b) >= 4; {
			l := int(b[0]) | int(b[1])<<8
			t := int(b[2]) | int(b[3])<<8
			if l < 4 || l > len(b) {
				break
			}
			v := b[4:l]
			switch t & 0x3fff {
			case 1: // FRA_DST
				dst = net.IP(v)
			case 2: // FRA_SRC
				src = net.IP(v)
			case 6: // FRA_PRIORITY
				if len(v) == 4 {
					prio = uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16 | uint32(v[3])<<24
				}
			}
			b = b[(l+3)&^3:]
		}
		if (prio == 512 || prio == 1536) && (target.Equal(src) || target.Equal(dst)) {
			found = append(found, fmt.Sprintf("rule prio %d from %v to %v", prio, src, dst))
		}
	}
	return found, nil
}

// hostVeth is aws-cni's host veth name (IPAMProtocol's hostVethName): prefix + sha1("<ns>.<name>") hex[:11].
func hostVeth(p pod) string {
	sum := sha1.Sum([]byte(*podNamespace + "." + p.name))
	return *vethPrefix + hex.EncodeToString(sum[:])[:11]
}

// hostLeftovers: the pod's host veth, and (when the pod had ip) its rules, in the node's namespace.
func hostLeftovers(p pod, ip string) []string {
	var found []string
	if *vethPrefix != "" {
		if _, err := net.InterfaceByName(hostVeth(p)); err == nil {
			found = append(found, "host veth "+hostVeth(p))
		}
	}
	if ip != "" {
		rules, err := podRules(ip)
		if err != nil {
			found = append(found, "cannot dump the node's rules: "+err.Error())
		}
		found = append(found, rules...)
	}
	return found
}

type cycleOut struct {
	I        int      `json:"i"`
	Held     bool     `json:"held,omitempty"` // added before "@kill", deleted after it
	Gone     bool     `json:"gone,omitempty"` // DEL after the namespace was deleted (empty CNI_NETNS)
	AddStart int64    `json:"a0"`             // Unix ns
	AddEnd   int64    `json:"a1"`
	AddOK    bool     `json:"ok"`
	IP       string   `json:"ip,omitempty"`
	Code     uint     `json:"code,omitempty"` // the plugin's CNI error code of a failed ADD
	Error    string   `json:"err,omitempty"`
	DelStart int64    `json:"d0"` // the DEL, or containerd's cleanup DEL after a failed ADD
	DelEnd   int64    `json:"d1"`
	DelOK    bool     `json:"dok"`
	DelError string   `json:"derr,omitempty"`
	Leaks    []string `json:"leaks,omitempty"`
}

type cyclesOut struct {
	Op          string     `json:"op"`
	N           int        `json:"n"`
	Concurrency int        `json:"concurrency"`
	WallS       float64    `json:"wall_s"`
	Setup       stats      `json:"setup"`
	Remove      stats      `json:"remove"`
	Cycles      []cycleOut `json:"cycles"`
}

// cycleID is a cycle's sandbox id, from its netns path (the runner removes cache files by it, as for the bench).
func cycleID(netns string) string {
	sum := sha256.Sum256([]byte("cycle:" + netns))
	return hex.EncodeToString(sum[:])
}

func cyclePod(prefix string, i int, ann map[string]string) pod {
	netns := fmt.Sprintf("/var/run/netns/%s%d", prefix, i)
	return podFor(cycleID(netns), netns, nil, ann)
}

// cycleAdd creates the pod's namespace and ADDs it; a failed ADD gets containerd's cleanup DEL and its checks, and
// the namespace is deleted.
func cycleAdd(c gocni.CNI, p pod, out *cycleOut) {
	if err := newNetns(p.netns); err != nil {
		out.Error = "create netns: " + err.Error()
		out.Leaks = append(out.Leaks, out.Error)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	out.AddStart = time.Now().UnixNano()
	res, err := c.Setup(ctx, p.id, p.netns, p.opts...)
	out.AddEnd = time.Now().UnixNano()
	cancel()
	if err == nil {
		out.IP, _, err = sandboxIPs(res)
	}
	if err == nil {
		out.AddOK = true
		return
	}
	out.Error = err.Error()
	var cniErr *cnitypes.Error
	if errors.As(err, &cniErr) {
		out.Code = cniErr.Code
	}
	cycleDel(c, p, out) // containerd's cleanup DEL
}

// cycleDel DELs the pod (with libcni's cached result), checks the host and the pod, and deletes its namespace.
// With out.Gone the namespace is deleted first and the DEL has an empty CNI_NETNS, as containerd sends it once the
// sandbox's namespace is gone (the pod's end of the veth goes with the namespace, asynchronously).
func cycleDel(c gocni.CNI, p pod, out *cycleOut) {
	netns := p.netns
	if out.Gone {
		if err := deleteNetns(p.netns); err != nil {
			out.Leaks = append(out.Leaks, "delete netns: "+err.Error())
		}
		netns = ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	out.DelStart = time.Now().UnixNano()
	err := c.Remove(ctx, p.id, netns, p.opts...)
	out.DelEnd = time.Now().UnixNano()
	cancel()
	out.DelOK = err == nil
	if err != nil {
		out.DelError = err.Error()
	}
	out.Leaks = append(out.Leaks, hostLeftovers(p, out.IP)...)
	if !out.Gone {
		out.Leaks = append(out.Leaks, podLeftovers(p.netns)...)
		if err := deleteNetns(p.netns); err != nil {
			out.Leaks = append(out.Leaks, "delete netns: "+err.Error())
		}
	}
}

// runCycles runs n cycles (ADD, checks, DEL, checks), conc at a time. With -kill-at K it prints "@kill" and waits
// for a line on stdin (the runner answers once ipamd is dead), then "@restart" (not waiting) once -outage cycles have
// completed after that. One at a time, the kill is synchronised: cycles K..K+held-1 are ADDed, "@kill", then DELed
// (DELs while ipamd is down, each with its cached result). Several at a time it is not: "@kill" goes out when cycle K
// is dispatched, with conc-1 cycles in flight (an ADD or DEL may meet ipamd dying). The held pods' DELs do not count
// towards -outage: the outage's cycles come after them.
func runCycles(c gocni.CNI, n, conc int, prefix string, ann map[string]string) cyclesOut {
	out := cyclesOut{Op: "cycles", N: n, Concurrency: conc, Cycles: make([]cycleOut, n)}
	stdin := bufio.NewReader(os.Stdin)
	var printMu sync.Mutex
	say := func(line string) {
		printMu.Lock()
		defer printMu.Unlock()
		fmt.Fprintln(os.Stdout, line)
	}
	var afterKill, killed int64
	var restart sync.Once
	kill := func() {
		say("@kill")
		stdin.ReadString('\n')
		atomic.StoreInt64(&killed, 1)
	}
	done := func() {
		if atomic.LoadInt64(&killed) == 1 && atomic.AddInt64(&afterKill, 1) >= int64(*outage) {
			restart.Do(func() { say("@restart") })
		}
	}
	one := func(i int) {
		o := &out.Cycles[i]
		o.I = i
		p := cyclePod(prefix, i, ann)
		cycleAdd(c, p, o)
		if o.AddOK {
			o.Gone = *goneEvery > 0 && i%*goneEvery == *goneEvery-1
			cycleDel(c, p, o)
		}
		done()
	}
	start := time.Now()
	first := 0
	if *killAt >= 0 && conc == 1 && *killAt+*held <= n {
		for i := 0; i < *killAt; i++ {
			one(i)
		}
		pods := make([]pod, *held)
		for j := range pods {
			i := *killAt + j
			o := &out.Cycles[i]
			o.I, o.Held = i, true
			pods[j] = cyclePod(prefix, i, ann)
			cycleAdd(c, pods[j], o)
		}
		kill()
		for j, p := range pods {
			o := &out.Cycles[*killAt+j]
			if o.AddOK {
				o.Gone = *goneEvery > 0 && j%*goneEvery == *goneEvery-1
				cycleDel(c, p, o)
			}
		}
		first = *killAt + *held
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				one(i)
			}
		}()
	}
	for i := first; i < n; i++ {
		if i == *killAt && conc > 1 {
			kill()
		}
		next <- i
	}
	close(next)
	wg.Wait()
	out.WallS = time.Since(start).Seconds()
	var adds, dels []float64
	for _, o := range out.Cycles {
		if o.AddOK {
			adds = append(adds, float64(o.AddEnd-o.AddStart)/1e6)
			dels = append(dels, float64(o.DelEnd-o.DelStart)/1e6)
		}
	}
	out.Setup, out.Remove = summarize(adds), summarize(dels)
	return out
}

type loadOut struct {
	Op       string       `json:"op"`
	OK       bool         `json:"ok"`
	Error    string       `json:"error,omitempty"`
	ConfDir  string       `json:"conf_dir"`
	BinDirs  []string     `json:"bin_dirs"`
	Networks []networkOut `json:"networks"`
}

type networkOut struct {
	Name       string   `json:"name"`
	CNIVersion string   `json:"cniVersion"`
	IfName     string   `json:"ifname"`
	Plugins    []string `json:"plugins"`
}

func main() {
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: cni-harness [flags] load | setup ID NETNS | check ID NETNS | remove ID NETNS|- | bench N CONCURRENCY NETNS-PREFIX | cycles N CONCURRENCY NETNS-PREFIX")
		flag.PrintDefaults()
	}
	flag.Parse()
	args := flag.Args()
	if len(args) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if *runtimeVer != "1.6" && *runtimeVer != "1.7" {
		fail("-runtime must be 1.6 or 1.7, not %q", *runtimeVer)
	}
	var portMaps []gocni.PortMapping
	for _, spec := range ports {
		pm, err := parsePort(spec)
		if err != nil {
			fail("%v", err)
		}
		if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
			fail("port mapping %q: %q is not an IP address", spec, pm.HostIP)
		}
		portMaps = append(portMaps, pm)
	}
	ann := map[string]string{}
	for _, a := range annotations {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			fail("annotation %q: want KEY=VALUE", a)
		}
		ann[k] = v
	}
	want := map[string]int{"load": 1, "setup": 3, "check": 3, "remove": 3, "bench": 4, "cycles": 4}
	if n, ok := want[args[0]]; !ok || len(args) != n {
		flag.Usage()
		os.Exit(2)
	}

	c, err := newCNI()
	if args[0] == "load" {
		out := loadOut{Op: "load", OK: err == nil, ConfDir: *confDir, BinDirs: strings.Split(*binDirs, ":"),
			Networks: []networkOut{}}
		if err != nil {
			out.Error = err.Error()
		} else {
			for _, nw := range c.GetConfig().Networks {
				no := networkOut{Name: nw.Config.Name, CNIVersion: nw.Config.CNIVersion, IfName: nw.IFName,
					Plugins: []string{}}
				for _, p := range nw.Config.Plugins {
					no.Plugins = append(no.Plugins, p.Network.Type)
				}
				out.Networks = append(out.Networks, no)
			}
		}
		emit(out)
		if !out.OK {
			os.Exit(1)
		}
		return
	}
	if err != nil {
		emit(simpleOut{Op: args[0], Error: err.Error()})
		os.Exit(1)
	}

	ok := true
	switch args[0] {
	case "setup":
		r := doSetup(c, podFor(args[1], args[2], portMaps, ann), true)
		ok = r.OK
		emit(r)
	case "check":
		r := doCheck(podFor(args[1], args[2], portMaps, ann))
		ok = r.OK
		emit(r)
	case "remove":
		r := doRemove(c, podFor(args[1], args[2], portMaps, ann))
		ok = r.OK
		emit(r)
	case "bench":
		n, err1 := strconv.Atoi(args[1])
		conc, err2 := strconv.Atoi(args[2])
		if err1 != nil || err2 != nil || n < 1 || conc < 1 {
			fail("bench: N and CONCURRENCY must be positive numbers")
		}
		r := doBench(c, n, conc, args[3], portMaps, ann)
		ok = len(r.Errors) == 0
		emit(r)
	case "cycles":
		n, err1 := strconv.Atoi(args[1])
		conc, err2 := strconv.Atoi(args[2])
		if err1 != nil || err2 != nil || n < 1 || conc < 1 {
			fail("cycles: N and CONCURRENCY must be positive numbers")
		}
		emit(runCycles(c, n, conc, args[3], ann)) // the runner judges the cycles
	}
	if !ok {
		os.Exit(1)
	}
}
