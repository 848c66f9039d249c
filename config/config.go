// Package config reads the farm file: the one YAML file every member of a
// farm (each pushd node, each dnsd observer) reads to learn the service, the
// members and their addresses, the TLS files of the mesh and the tokens.
//
// Parsing is strict: an unknown key, a repeated key or a bad value is an
// error that names the key path, e.g.
//
//	nodes[1].priority: "AA" is not a priority group (want a letter A to Z) (line 14)
//
// Relative paths in the file are relative to the directory of the file.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/farmlb/farmlb/farm"
	"go.yaml.in/yaml/v3"
)

// MaxFileBytes bounds the farm file; a farm of farm.MaxServers nodes fits
// with room to spare.
const MaxFileBytes = 4 << 20

// NamePlaceholder in tls.cert and tls.key is replaced by the member's name.
const NamePlaceholder = "{name}"

// Farm is a parsed and validated farm file, with the defaults filled in.
// Treat it as read-only once parsed: members share it.
type Farm struct {
	// Service is the name clients resolve, e.g. "stream.example.com"
	// (lower case, no trailing dot).
	Service string `yaml:"service"`
	// Zone is the DNS zone dnsd serves; defaults to Service. Service is
	// Zone itself or a name below it.
	Zone string `yaml:"zone"`
	// TLS names the farm CA and each member's certificate and key.
	TLS TLS `yaml:"tls"`
	// Tokens are the bearer tokens of pushd's HTTP API.
	Tokens Tokens `yaml:"tokens"`
	// Nodes are the pushd servers, in the order the farm list shows them.
	Nodes []Node `yaml:"nodes"`
	// Observers are the dnsd instances: mesh members that serve no clients.
	Observers []Observer `yaml:"observers"`
	// Pushd holds pushd's own settings (config/pushd.go).
	Pushd Pushd `yaml:"pushd"`
	// DNS holds dnsd's settings (config/dns.go).
	DNS DNS `yaml:"dns"`
	// Mesh holds the mesh's failure-detection timers, the same for every
	// member (config/mesh.go); filled in with the defaults.
	Mesh Mesh `yaml:"mesh"`

	// Dir is the directory relative paths were resolved against: the
	// file's directory for Load, the working directory ("") for Parse.
	Dir string `yaml:"-"`
}

// TLS names the files of the mesh's mutual TLS.
type TLS struct {
	// CA is the farm CA's certificate (PEM).
	CA string `yaml:"ca"`
	// Cert is a member's certificate (PEM); "{name}" stands for the
	// member's name, so that one file serves every member.
	Cert string `yaml:"cert"`
	// Key is a member's private key (PEM); "{name}" as in Cert.
	Key string `yaml:"key"`
}

// CertFile returns the certificate path of the named member.
func (t TLS) CertFile(member string) string {
	return strings.ReplaceAll(t.Cert, NamePlaceholder, member)
}

// KeyFile returns the private key path of the named member.
func (t TLS) KeyFile(member string) string {
	return strings.ReplaceAll(t.Key, NamePlaceholder, member)
}

// Tokens are pushd's bearer tokens. The environment variable FARMLB_TOKEN
// overrides Publish in pushd and farmctl (their business, not this package's).
type Tokens struct {
	// Publish authorises POST /publish.
	Publish string `yaml:"publish"`
	// Admin authorises /admin/*; defaults to Publish.
	Admin string `yaml:"admin"`
}

// Node is one pushd server.
type Node struct {
	// Name is the node's name: a DNS label, unique among all members.
	Name string `yaml:"name"`
	// URL is the public URL clients use (http or https).
	URL string `yaml:"url"`
	// Listen is the HTTP listen address; defaults to host:port of URL
	// (port 80 or 443 by scheme when the URL has none).
	Listen string `yaml:"listen"`
	// Addrs are the public addresses for A/AAAA records; default: the
	// URL's host when it is an IP address, else none.
	Addrs []netip.Addr `yaml:"addrs"`
	// Peer is the node's QUIC mesh address (UDP host:port).
	Peer string `yaml:"peer"`
	// Priority is the node's priority group, A (the default) to Z.
	Priority farm.Priority `yaml:"priority"`
	// Capacity is the most streams the node takes; 0 means no limit.
	Capacity int `yaml:"capacity"`
	// Health is the node's own health checks (config/health.go); nil
	// when it has none.
	Health *Health `yaml:"health"`
}

// Server returns the node as a farm list entry: DOWN, no users.
func (n *Node) Server() farm.Server {
	return farm.Server{
		Name:     n.Name,
		URL:      n.URL,
		Addrs:    append([]netip.Addr(nil), n.Addrs...),
		Status:   farm.StatusDown,
		Priority: n.Priority,
		Capacity: n.Capacity,
	}
}

// Observer is one dnsd instance: it holds the table but serves no clients.
type Observer struct {
	// Name is the observer's name, unique among all members.
	Name string `yaml:"name"`
	// Peer is the observer's QUIC mesh address (UDP host:port).
	Peer string `yaml:"peer"`
	// DNS is where this dnsd listens, UDP and TCP (host:port).
	DNS string `yaml:"dns"`
}

// Member is any member of the mesh: a node or an observer.
type Member struct {
	Name     string
	Peer     string    // QUIC mesh address
	Node     *Node     // set for a node
	Observer *Observer // set for an observer
}

// Members returns every member: the nodes in file order, then the observers.
func (f *Farm) Members() []Member {
	ms := make([]Member, 0, len(f.Nodes)+len(f.Observers))
	for i := range f.Nodes {
		ms = append(ms, Member{Name: f.Nodes[i].Name, Peer: f.Nodes[i].Peer, Node: &f.Nodes[i]})
	}
	for i := range f.Observers {
		ms = append(ms, Member{Name: f.Observers[i].Name, Peer: f.Observers[i].Peer, Observer: &f.Observers[i]})
	}
	return ms
}

// Node returns the node with the given name (names compare
// case-insensitively, as in DNS).
func (f *Farm) Node(name string) (*Node, bool) {
	for i := range f.Nodes {
		if strings.EqualFold(f.Nodes[i].Name, name) {
			return &f.Nodes[i], true
		}
	}
	return nil, false
}

// Observer returns the observer with the given name.
func (f *Farm) Observer(name string) (*Observer, bool) {
	for i := range f.Observers {
		if strings.EqualFold(f.Observers[i].Name, name) {
			return &f.Observers[i], true
		}
	}
	return nil, false
}

// Member returns the node or observer with the given name.
func (f *Farm) Member(name string) (Member, bool) {
	if n, ok := f.Node(name); ok {
		return Member{Name: n.Name, Peer: n.Peer, Node: n}, true
	}
	if o, ok := f.Observer(name); ok {
		return Member{Name: o.Name, Peer: o.Peer, Observer: o}, true
	}
	return Member{}, false
}

// InitialList returns the farm list before anything is known: every node
// DOWN with 0 users. Each call returns a fresh list the caller owns.
func (f *Farm) InitialList() *farm.List {
	l := &farm.List{Service: f.Service, Servers: make([]farm.Server, len(f.Nodes))}
	for i := range f.Nodes {
		l.Servers[i] = f.Nodes[i].Server()
	}
	return l
}

// Path resolves a path from the file against Dir ("" and absolute paths
// are returned as they are). Sections owned by other components use it for
// their own paths.
func (f *Farm) Path(p string) string {
	if p == "" || filepath.IsAbs(p) || f.Dir == "" {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// Load reads and parses the farm file at path; relative paths in it are
// resolved against the file's directory.
func Load(path string) (*Farm, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, MaxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	f, err := parse(data, dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// Parse parses a farm file's content; relative paths stay relative to the
// working directory.
func Parse(data []byte) (*Farm, error) { return parse(data, "") }

func parse(data []byte, dir string) (*Farm, error) {
	if len(data) > MaxFileBytes {
		return nil, &KeyError{Err: fmt.Errorf("file is larger than %d bytes", MaxFileBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &KeyError{Err: errors.New("empty file")}
		}
		return nil, &KeyError{Err: fmt.Errorf("not valid YAML: %w", err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, &KeyError{Line: extra.Line, Err: errors.New("more than one YAML document")}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		return nil, &KeyError{Err: errors.New("empty file")}
	}
	f := &Farm{Dir: dir}
	if err := decode(doc.Content[0], reflect.ValueOf(f).Elem(), ""); err != nil {
		return nil, err
	}
	if err := f.validate(); err != nil {
		var ke *KeyError
		if errors.As(err, &ke) && ke.Line == 0 {
			ke.Line = lineOf(doc.Content[0], ke.Path)
		}
		return nil, err
	}
	return f, nil
}

// lineOf returns the line of the value at a key path such as
// "nodes[1].peer" in the document root, or 0 if the path is not there (a
// default filled in, or the whole file), so that an error found after
// decoding still points at the line to change.
func lineOf(root *yaml.Node, path string) int {
	if path == "" {
		return 0
	}
	n := root
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			if n.Kind != yaml.MappingNode {
				return 0
			}
			var next *yaml.Node
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					next = n.Content[i+1]
				}
			}
			if next == nil {
				return 0
			}
			n = next
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return 0
			}
			n = n.Content[i]
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return n.Line
}

// validate checks the whole file and fills in the defaults.
func (f *Farm) validate() error {
	var err error
	if f.Service, err = checkDomain(f.Service); err != nil {
		return &KeyError{Path: "service", Err: err}
	}
	if f.Zone == "" {
		f.Zone = f.Service
	} else if f.Zone, err = checkDomain(f.Zone); err != nil {
		return &KeyError{Path: "zone", Err: err}
	}
	if f.Service != f.Zone && !strings.HasSuffix(f.Service, "."+f.Zone) {
		return keyErr("zone", 0, "%q does not contain the service %q", f.Zone, f.Service)
	}
	if f.Tokens.Admin == "" {
		f.Tokens.Admin = f.Tokens.Publish
	}
	f.TLS.CA = f.Path(f.TLS.CA)
	f.TLS.Cert = f.Path(f.TLS.Cert)
	f.TLS.Key = f.Path(f.TLS.Key)

	if len(f.Nodes) == 0 {
		return keyErr("nodes", 0, "a farm needs at least one node")
	}
	if n := len(f.Nodes) + len(f.Observers); n > farm.MaxServers {
		return keyErr("nodes", 0, "%d members, at most %d", n, farm.MaxServers)
	}
	names := map[string]string{} // lower-case name -> key path of its first use
	peers := map[string]string{}
	claim := func(path, name, peer string) error {
		if first, dup := names[strings.ToLower(name)]; dup {
			return keyErr(path+".name", 0, "%q is already the name of %s", name, first)
		}
		names[strings.ToLower(name)] = path
		if first, dup := peers[peer]; dup {
			return keyErr(path+".peer", 0, "%q is already the peer address of %s", peer, first)
		}
		peers[peer] = path
		return nil
	}
	for i := range f.Nodes {
		p := fmt.Sprintf("nodes[%d]", i)
		if err := f.Nodes[i].validate(p); err != nil {
			return err
		}
		if err := claim(p, f.Nodes[i].Name, f.Nodes[i].Peer); err != nil {
			return err
		}
	}
	for i := range f.Observers {
		p := fmt.Sprintf("observers[%d]", i)
		if err := f.Observers[i].validate(p); err != nil {
			return err
		}
		if err := claim(p, f.Observers[i].Name, f.Observers[i].Peer); err != nil {
			return err
		}
	}
	if err := f.Pushd.validate(f, "pushd"); err != nil {
		return err
	}
	if err := f.DNS.validate(f, "dns"); err != nil {
		return err
	}
	if err := f.Mesh.validate("mesh"); err != nil {
		return err
	}
	// The list the farm starts from must be one every encoding accepts.
	if err := f.InitialList().Validate(); err != nil {
		return &KeyError{Path: "nodes", Err: err}
	}
	return nil
}

func (n *Node) validate(p string) error {
	if err := checkLabel(n.Name); err != nil {
		return &KeyError{Path: p + ".name", Err: err}
	}
	u, err := checkURL(n.URL)
	if err != nil {
		return &KeyError{Path: p + ".url", Err: err}
	}
	if n.Listen == "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
		}
		n.Listen = net.JoinHostPort(u.Hostname(), port)
	} else if err := checkHostPort(n.Listen, true); err != nil {
		return &KeyError{Path: p + ".listen", Err: err}
	}
	if n.Addrs == nil {
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			n.Addrs = []netip.Addr{a.Unmap()}
		}
	}
	if len(n.Addrs) > farm.MaxAddrs {
		return keyErr(p+".addrs", 0, "%d addresses, at most %d", len(n.Addrs), farm.MaxAddrs)
	}
	for i, a := range n.Addrs {
		if !a.IsValid() || a.Zone() != "" {
			return keyErr(fmt.Sprintf("%s.addrs[%d]", p, i), 0, "%q is not a public IP address", a)
		}
	}
	if n.Peer == "" {
		return keyErr(p+".peer", 0, "missing: every node needs a mesh address (host:port)")
	}
	if err := checkHostPort(n.Peer, false); err != nil {
		return &KeyError{Path: p + ".peer", Err: err}
	}
	if n.Priority > farm.PriorityLowest {
		return keyErr(p+".priority", 0, "%d is not a priority group", n.Priority)
	}
	if n.Capacity < 0 || n.Capacity > farm.MaxUsers {
		return keyErr(p+".capacity", 0, "%d out of range 0..%d", n.Capacity, farm.MaxUsers)
	}
	if n.Health != nil {
		return n.Health.validate(p + ".health")
	}
	return nil
}

func (o *Observer) validate(p string) error {
	if err := checkLabel(o.Name); err != nil {
		return &KeyError{Path: p + ".name", Err: err}
	}
	if o.Peer == "" {
		return keyErr(p+".peer", 0, "missing: every observer needs a mesh address (host:port)")
	}
	if err := checkHostPort(o.Peer, false); err != nil {
		return &KeyError{Path: p + ".peer", Err: err}
	}
	if o.DNS == "" {
		return keyErr(p+".dns", 0, "missing: the address dnsd listens on (host:port)")
	}
	if err := checkHostPort(o.DNS, true); err != nil {
		return &KeyError{Path: p + ".dns", Err: err}
	}
	return nil
}

// checkLabel accepts a DNS label: letters, digits and '-', 1 to 63 bytes,
// neither starting nor ending with '-'.
func checkLabel(s string) error {
	if s == "" {
		return errors.New("missing")
	}
	if len(s) > farm.MaxNameLen {
		return fmt.Errorf("%q is %d bytes, at most %d", s, len(s), farm.MaxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%q is not a DNS label (letters, digits and inner '-')", s)
		}
	}
	return nil
}

// checkDomain accepts a domain name of DNS labels and returns it in lower
// case without a trailing dot.
func checkDomain(s string) (string, error) {
	if s == "" {
		return "", errors.New("missing")
	}
	d := strings.ToLower(strings.TrimSuffix(s, "."))
	if len(d) > 253 {
		return "", fmt.Errorf("%q is longer than 253 bytes", s)
	}
	for _, l := range strings.Split(d, ".") {
		if err := checkLabel(l); err != nil {
			return "", fmt.Errorf("%q is not a domain name: %w", s, err)
		}
	}
	return d, nil
}

func checkURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("missing")
	}
	if len(s) > farm.MaxURLLen {
		return nil, fmt.Errorf("%d bytes, at most %d", len(s), farm.MaxURLLen)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%q is not a URL", s)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%q: scheme must be http or https", s)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("%q has no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.ParseUint(p, 10, 16); err != nil || n == 0 {
			return nil, fmt.Errorf("%q: port %q is not 1..65535", s, p)
		}
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q: a server URL has no user, query or fragment", s)
	}
	return u, nil
}

// checkHostPort accepts host:port where host is an IP address or a DNS
// name; port 0 only when zeroPort (a listen address that picks a port).
func checkHostPort(s string, zeroPort bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 && !zeroPort {
		return fmt.Errorf("%q: port %q is not 1..65535", s, port)
	}
	if host == "" {
		if zeroPort {
			return nil // ":8080" listens on every address
		}
		return fmt.Errorf("%q has no host", s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if _, err := checkDomain(host); err != nil {
		return fmt.Errorf("%q: host is neither an IP address nor a domain name", s)
	}
	return nil
}
