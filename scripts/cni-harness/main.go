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
//	                                                  nearest rank) and the largest plugin process's peak RSS as JSON
//
// Everything printed on stdout is one JSON object; plugins' stderr passes through.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	gocni "github.com/containerd/go-cni"
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
	// The largest peak RSS of one plugin process the harness waited for (any plugin of the chains, loopback too).
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru) == nil {
		out.MaxRSSKiB = ru.Maxrss
	}
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
		fmt.Fprintln(os.Stderr, "usage: cni-harness [flags] load | setup ID NETNS | check ID NETNS | remove ID NETNS|- | bench N CONCURRENCY NETNS-PREFIX")
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
	want := map[string]int{"load": 1, "setup": 3, "check": 3, "remove": 3, "bench": 4}
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
	}
	if !ok {
		os.Exit(1)
	}
}
