package main

// Tests of the real binary: built once in TestMain, then run as a process
// the way an operator runs it, with flags, environment variables, a config
// file, signals and TLS.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the path of the novacron binary TestMain built.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "novacron-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "novacron")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, ".")
	out, err := build.CombinedOutput()
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const adminPassword = "binary-test-admin-pw-7"

// syncBuffer collects a child's output while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// baseEnv is the test process's environment without anything the binary
// reads as configuration, so a developer's settings cannot leak in.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NOVACRON_") || k == "DB_URL" || k == "AUTH_SECRET" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// proc is a running novacron process.
type proc struct {
	t              *testing.T
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{} // closed when the process has exited
	waitErr        error
}

// run starts the binary with args in directory dir (a new temporary
// directory when empty), with extra environment variables env, and kills it
// when the test ends.
func run(t *testing.T, dir string, env []string, args ...string) *proc {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	p := &proc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdin = strings.NewReader("")
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start novacron: %v", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("novacron (pid %d) did not die after SIGKILL", p.cmd.Process.Pid)
		}
	})
	return p
}

// exitCode waits up to timeout for the process to exit and returns its
// exit code.
func (p *proc) exitCode(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("novacron did not exit within %s\nstderr:\n%s", timeout, p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.waitErr, &ee) {
		return ee.ExitCode()
	}
	if p.waitErr != nil {
		p.t.Fatalf("wait: %v", p.waitErr)
	}
	return 0
}

// logLines parses the JSON log lines on stderr.
func (p *proc) logLines() []map[string]any {
	var lines []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			lines = append(lines, m)
		}
	}
	return lines
}

// logged returns the first JSON log line with message msg, or nil.
func (p *proc) logged(msg string) map[string]any {
	for _, l := range p.logLines() {
		if l["msg"] == msg {
			return l
		}
	}
	return nil
}

// started waits for the "novacron server started" log line and returns it.
func (p *proc) started() map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if l := p.logged("novacron server started"); l != nil {
			if s, _ := l["listen"].(string); s == "" {
				p.t.Fatalf("started line has no listen address: %v", l)
			}
			return l
		}
		select {
		case <-p.done:
			p.t.Fatalf("novacron exited before it started: %v\nstderr:\n%s", p.waitErr, p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	p.t.Fatalf("novacron did not start within 30s\nstderr:\n%s", p.stderr.String())
	return nil
}

// stop sends SIGTERM and checks the server stops cleanly: exit code 0
// within 10s and "stopped" in the log.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	if code := p.exitCode(10 * time.Second); code != 0 {
		p.t.Fatalf("exit code %d after SIGTERM, want 0\nstderr:\n%s", code, p.stderr.String())
	}
	if p.logged("shutting down") == nil || p.logged("stopped") == nil {
		p.t.Errorf("no shutting down/stopped log lines:\n%s", p.stderr.String())
	}
}

var client = &http.Client{Timeout: 15 * time.Second}

// login posts a login and returns the status and token.
func login(t *testing.T, hc *http.Client, base, user, pw string) (int, string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	resp, err := hc.Post(base+"/auth/login", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Token string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body.Token
}

func health(t *testing.T, hc *http.Client, base string) *http.Response {
	t.Helper()
	resp, err := hc.Get(base + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer resp.Body.Close()
	var body struct{ Status string }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 || body.Status != "ok" {
		t.Fatalf("GET /health: status %d, body %+v, err %v", resp.StatusCode, body, err)
	}
	return resp
}

func TestServerServesAndStopsOnSIGTERM(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := run(t, "", []string{"NOVACRON_ADMIN_PASSWORD=" + adminPassword},
		"server", "--listen", "127.0.0.1:0", "--data-dir", data, "--log-format", "json")
	l := p.started()
	base := "http://" + l["listen"].(string)
	if l["database"] != "sqlite" || l["data_dir"] != data || l["tls"] != false {
		t.Errorf("started line: %v", l)
	}
	health(t, client, base)
	if st, tok := login(t, client, base, "admin", adminPassword); st != 200 || tok == "" {
		t.Fatalf("login: status %d, token %q", st, tok)
	}
	if _, err := os.Stat(filepath.Join(data, "novacron.db")); err != nil {
		t.Errorf("no database in the data directory: %v", err)
	}
	if _, err := os.Stat(filepath.Join(data, "admin-password")); !os.IsNotExist(err) {
		t.Errorf("admin-password written although NOVACRON_ADMIN_PASSWORD was set: %v", err)
	}

	// A login is in flight when SIGTERM arrives: its handler is reading the
	// body (the server has answered "100 Continue", which it does on the
	// handler's first read), and the rest of the body is only sent once the
	// server logged that it is shutting down. It still gets its answer, and
	// then the process exits 0.
	got100 := make(chan struct{})
	type answer struct {
		status int
		token  string
		err    error
	}
	done := make(chan answer, 1)
	pr, pw := io.Pipe()
	defer pw.Close()
	go func() {
		var once sync.Once
		trace := &httptrace.ClientTrace{Got100Continue: func() { once.Do(func() { close(got100) }) }}
		ctx := httptrace.WithClientTrace(context.Background(), trace)
		req, _ := http.NewRequestWithContext(ctx, "POST", base+"/auth/login", pr)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Expect", "100-continue")
		hc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
			DisableKeepAlives: true, ExpectContinueTimeout: 15 * time.Second}}
		resp, err := hc.Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		var body struct{ Token string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		done <- answer{status: resp.StatusCode, token: body.Token}
	}()
	select {
	case <-got100:
	case a := <-done:
		t.Fatalf("the login answered before its body was sent: %+v", a)
	case <-time.After(15 * time.Second):
		t.Fatal("the server never started reading the login")
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.logged("shutting down") == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no \"shutting down\" after SIGTERM:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // let Shutdown close the listener
	fresh := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Get(base + "/health"); err == nil {
		t.Error("the server accepts new requests while shutting down")
	}
	b, _ := json.Marshal(map[string]string{"username": "admin", "password": adminPassword})
	if _, err := pw.Write(b); err != nil {
		t.Fatalf("send the rest of the login: %v", err)
	}
	pw.Close()
	select {
	case a := <-done:
		if a.err != nil || a.status != 200 || a.token == "" {
			t.Errorf("the login in flight at SIGTERM: %+v", a)
		}
	case <-time.After(15 * time.Second):
		t.Error("the login in flight at SIGTERM never answered")
	}
	if code := p.exitCode(10 * time.Second); code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0\nstderr:\n%s", code, p.stderr.String())
	}
	if p.logged("stopped") == nil {
		t.Errorf("no \"stopped\" log line:\n%s", p.stderr.String())
	}
	if _, err := fresh.Get(base + "/health"); err == nil {
		t.Error("the API still answers after the process exited")
	}

	out := p.stdout.String() + p.stderr.String()
	if strings.Contains(out, adminPassword) {
		t.Error("the admin password appears in the output")
	}
	if p.stdout.String() != "" {
		t.Errorf("stdout is not a terminal, yet the server wrote %q", p.stdout.String())
	}
	// The log shows the order: shutting down, the login's answer, stopped.
	var order []string
	for _, l := range p.logLines() {
		switch {
		case l["msg"] == "shutting down", l["msg"] == "stopped":
			order = append(order, l["msg"].(string))
		case l["msg"] == "request" && l["path"] == "/auth/login":
			order = append(order, fmt.Sprint("login ", l["status"]))
		}
	}
	if got := strings.Join(order, ", "); got != "login 200, shutting down, login 200, stopped" {
		t.Errorf("log order: %s", got)
	}
	for _, l := range p.logLines() {
		if l["level"] == "ERROR" {
			t.Errorf("error logged: %v", l)
		}
	}
}

func TestServerGeneratedAdminPassword(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	p := run(t, "", nil, "server", "--listen", "127.0.0.1:0", "--data-dir", data)
	base := "http://" + p.started()["listen"].(string)
	pf := filepath.Join(data, "admin-password")
	fi, err := os.Stat(pf)
	if err != nil {
		t.Fatalf("no admin-password file: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("admin-password mode %v, want 0600", fi.Mode().Perm())
	}
	if fi, err := os.Stat(data); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: mode %v, err %v; want 0700", fi.Mode().Perm(), err)
	}
	b, _ := os.ReadFile(pf)
	pw := strings.TrimSpace(string(b))
	if len(pw) < 20 {
		t.Fatalf("generated password %q", pw)
	}
	if st, _ := login(t, client, base, "admin", pw); st != 200 {
		t.Fatalf("login with the generated password: status %d", st)
	}
	l := p.logged("created the first admin with a generated password")
	if l == nil || l["password_file"] != pf {
		t.Errorf("the log does not point at the password file: %v", l)
	}
	p.stop()
	if out := p.stdout.String() + p.stderr.String(); strings.Contains(out, pw) {
		t.Errorf("the generated password appears in the output:\n%s", out)
	}

	// A restart keeps the admin and its password; no new one is made.
	p = run(t, "", nil, "server", "--listen", "127.0.0.1:0", "--data-dir", data)
	p.started()
	if b2, _ := os.ReadFile(pf); string(b2) != string(b) {
		t.Error("the restart changed the admin-password file")
	}
	if p.logged("created the first admin with a generated password") != nil {
		t.Error("the restart created the admin again")
	}
	p.stop()
}

func TestServerConfigSources(t *testing.T) {
	t.Run("env beats file", func(t *testing.T) {
		dir := t.TempDir()
		data := filepath.Join(dir, "from-file")
		cfg := filepath.Join(dir, "novacron.conf")
		// The file sets a listen address the environment overrides; the
		// data directory comes from the file alone.
		conf := "# test config\ndata-dir = " + data + "\nlisten = 127.0.0.1:1\nlog-level = \"warn\"\n"
		if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		p := run(t, dir, []string{"NOVACRON_LISTEN=127.0.0.1:0", "NOVACRON_ADMIN_PASSWORD=" + adminPassword},
			"server", "--config", cfg, "--log-level", "info")
		l := p.started()
		if l["data_dir"] != data || strings.HasSuffix(l["listen"].(string), ":1") {
			t.Errorf("started line: %v", l)
		}
		if _, err := os.Stat(filepath.Join(data, "novacron.db")); err != nil {
			t.Errorf("the data directory of the config file was not used: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "novacron-data")); !os.IsNotExist(err) {
			t.Errorf("the default data directory was created: %v", err)
		}
		health(t, client, "http://"+l["listen"].(string))
		p.stop()
	})

	t.Run("config file from NOVACRON_CONFIG, flag beats env", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "novacron.conf")
		if err := os.WriteFile(cfg, []byte("data-dir = "+filepath.Join(dir, "file")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		p := run(t, dir, []string{"NOVACRON_CONFIG=" + cfg, "NOVACRON_DATA_DIR=" + filepath.Join(dir, "env"),
			"NOVACRON_LISTEN=127.0.0.1:0", "NOVACRON_ADMIN_PASSWORD=" + adminPassword},
			"server", "--data-dir", filepath.Join(dir, "flag"))
		if l := p.started(); l["data_dir"] != filepath.Join(dir, "flag") {
			t.Errorf("data_dir %v, want the flag's", l["data_dir"])
		}
		p.stop()
		for _, d := range []string{"file", "env"} {
			if _, err := os.Stat(filepath.Join(dir, d)); !os.IsNotExist(err) {
				t.Errorf("data directory %q was created: %v", d, err)
			}
		}
	})

	t.Run("DB_URL alias", func(t *testing.T) {
		dir := t.TempDir()
		db := filepath.Join(dir, "elsewhere", "nc.db")
		if err := os.MkdirAll(filepath.Dir(db), 0o700); err != nil {
			t.Fatal(err)
		}
		data := filepath.Join(dir, "data")
		p := run(t, dir, []string{"DB_URL=sqlite:" + db, "NOVACRON_ADMIN_PASSWORD=" + adminPassword},
			"server", "--listen", "127.0.0.1:0", "--data-dir", data)
		l := p.started()
		if l["database"] != "sqlite" {
			t.Errorf("started line: %v", l)
		}
		if _, err := os.Stat(db); err != nil {
			t.Errorf("DB_URL's SQLite file was not created: %v", err)
		}
		if _, err := os.Stat(filepath.Join(data, "novacron.db")); !os.IsNotExist(err) {
			t.Errorf("a database was created in the data directory too: %v", err)
		}
		health(t, client, "http://"+l["listen"].(string))
		p.stop()
	})

	t.Run("NOVACRON_DB_URL beats DB_URL", func(t *testing.T) {
		dir := t.TempDir()
		p := run(t, dir, []string{"NOVACRON_DB_URL=sqlite:" + filepath.Join(dir, "a.db"), "DB_URL=sqlite:" + filepath.Join(dir, "b.db"),
			"NOVACRON_ADMIN_PASSWORD=" + adminPassword},
			"server", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"))
		p.started()
		p.stop()
		if _, err := os.Stat(filepath.Join(dir, "a.db")); err != nil {
			t.Errorf("NOVACRON_DB_URL's file: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "b.db")); !os.IsNotExist(err) {
			t.Errorf("DB_URL's file was created: %v", err)
		}
	})
}

// selfSigned writes a self-signed ECDSA certificate for 127.0.0.1 and its key
// into dir and returns their paths and the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "novacron test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

func TestServerTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, cert := selfSigned(t, dir)
	p := run(t, dir, []string{"NOVACRON_ADMIN_PASSWORD=" + adminPassword},
		"server", "--listen", "127.0.0.1:0", "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert", certFile, "--tls-key", keyFile)
	l := p.started()
	if l["tls"] != true {
		t.Errorf("started line: %v", l)
	}
	addr := l["listen"].(string)

	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tlsClient := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}}
	resp := health(t, tlsClient, "https://"+addr)
	if hsts := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(hsts, "max-age=") {
		t.Errorf("Strict-Transport-Security = %q", hsts)
	}
	if resp.TLS == nil || resp.TLS.Version < tls.VersionTLS12 {
		t.Errorf("TLS state %+v", resp.TLS)
	}

	// A client that does not trust the certificate is refused.
	if _, err := client.Get("https://" + addr + "/health"); err == nil {
		t.Error("an untrusting client connected")
	}
	// TLS 1.1 is refused.
	old := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11},
	}}
	if _, err := old.Get("https://" + addr + "/health"); err == nil {
		t.Error("a TLS 1.1 client connected")
	}
	// Plain HTTP to the TLS port gets no API answer: at most Go's "400
	// Client sent an HTTP request to an HTTPS server".
	plain, err := client.Get("http://" + addr + "/health")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode != http.StatusBadRequest || strings.Contains(string(b), `"status"`) {
			t.Errorf("plain HTTP to the TLS port: status %d: %s", plain.StatusCode, b)
		}
	}
	p.stop()
}

func TestServerBadConfiguration(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	shortSecretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(shortSecretFile, []byte("tiny-secret-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		env      []string
		args     []string
		code     int
		contains string
		secret   string // must not appear in the output
	}{
		{"bad flag value", nil, []string{"--rate-limit-ip", "abc"}, 2, "rate-limit-ip", ""},
		{"bad env value", []string{"NOVACRON_RATE_LIMIT_IP=abc"}, nil, 2, "$NOVACRON_RATE_LIMIT_IP: invalid value for --rate-limit-ip", ""},
		{"unknown flag", nil, []string{"--no-such-flag"}, 2, "unknown flag", ""},
		{"short auth secret", nil, []string{"--auth-secret", "tiny-secret-xyz"}, 2, "32 bytes", "tiny-secret-xyz"},
		{"short AUTH_SECRET", []string{"AUTH_SECRET=tiny-secret-xyz"}, nil, 2, "32 bytes", "tiny-secret-xyz"},
		{"bad log format", nil, []string{"--log-format", "xml"}, 2, "--log-format must be json or text", ""},
		{"TLS cert without key", nil, []string{"--tls-cert", filepath.Join(dir, "cert.pem")}, 2, "--tls-key", ""},
		{"unreadable auth secret file", nil, []string{"--auth-secret-file", filepath.Join(dir, "missing")}, 2, "--auth-secret-file", ""},
		{"short secret in the auth secret file", nil, []string{"--auth-secret-file", shortSecretFile}, 2, "32 bytes", "tiny-secret-xyz"},
		{"inverted guest uid range", nil, []string{"--guest-uid-min", "5000", "--guest-uid-max", "4000"}, 2, "--guest-uid-min", ""},
		{"zero reconcile interval", []string{"NOVACRON_RECONCILE_INTERVAL=0s"}, nil, 2, "--reconcile-interval", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", data}, c.args...)
			p := run(t, dir, append([]string{"NOVACRON_ADMIN_PASSWORD=" + adminPassword}, c.env...), args...)
			code := p.exitCode(30 * time.Second)
			stderr := p.stderr.String()
			if code != c.code {
				t.Errorf("exit code %d, want %d\nstderr:\n%s", code, c.code, stderr)
			}
			if !strings.Contains(stderr, "error: ") || !strings.Contains(stderr, c.contains) {
				t.Errorf("stderr %q, want an error mentioning %q", stderr, c.contains)
			}
			if c.secret != "" && strings.Contains(stderr+p.stdout.String(), c.secret) {
				t.Errorf("the secret appears in the output: %q", stderr)
			}
			if p.logged("novacron server started") != nil {
				t.Error("the server started")
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("a refused configuration created the data directory: %v", err)
			}
			if code == 2 && !strings.Contains(stderr, "Run 'novacron server --help' for usage.") {
				t.Errorf("no pointer to --help: %q", stderr)
			}
		})
	}
}
