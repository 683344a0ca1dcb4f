package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
)

// Identity is a user of the test apiserver, authenticated by a static token.
type Identity struct {
	User   string
	Groups []string
	Token  string
}

// Config says where the binaries are and where the cluster keeps its files.
type Config struct {
	// BinDir holds etcd, kube-apiserver, kwok and kwok-stages.yaml.
	BinDir string
	// Dir is the cluster's working directory (data, certs, logs).
	Dir string
	// Users are extra identities the apiserver accepts (for RBAC tests).
	Users []Identity
	// StartTimeout bounds the wait for readiness (default 2 minutes).
	StartTimeout time.Duration
	// PodSecurity, when set ("baseline" or "restricted"), is the Pod
	// Security Standard the apiserver enforces, warns about and audits in
	// every namespace whose labels do not say otherwise, kube-system
	// included, as hardened clusters configure PodSecurity admission. Empty:
	// the apiserver's default (privileged everywhere).
	PodSecurity string
}

// ControlPlane is a running etcd + kube-apiserver (+ kwok once StartKwok ran).
type ControlPlane struct {
	cfg        Config
	URL        string
	AdminToken string
	Kubeconfig string
	procs      []*Process // in start order; stopped in reverse
}

// Binaries the control plane needs, relative to Config.BinDir.
var Binaries = []string{"etcd", "kube-apiserver", "kwok", "kwok-stages.yaml"}

// ErrBinariesMissing is returned when hack/cluster/build.sh has not run.
var ErrBinariesMissing = errors.New("control-plane binaries missing: run hack/cluster/build.sh")

// CheckBinaries returns ErrBinariesMissing (wrapped, naming the files) when
// any binary is absent.
func CheckBinaries(binDir string) error {
	var missing []string
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(binDir, b)); err != nil {
			missing = append(missing, b)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w (%s not in %s)", ErrBinariesMissing, strings.Join(missing, ", "), binDir)
	}
	return nil
}

// Start starts etcd and kube-apiserver on 127.0.0.1 and waits until the
// apiserver is ready. On any failure everything started is stopped.
func Start(ctx context.Context, cfg Config) (_ *ControlPlane, err error) {
	if err := CheckBinaries(cfg.BinDir); err != nil {
		return nil, err
	}
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 2 * time.Minute
	}
	cp := &ControlPlane{cfg: cfg}
	defer func() {
		if err != nil {
			cp.Stop(ctx)
		}
	}()
	etcdURL, err := cp.startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx, etcdURL); err != nil {
		return nil, err
	}
	return cp, nil
}

func (cp *ControlPlane) startEtcd(ctx context.Context) (string, error) {
	ports, err := freePorts(2)
	if err != nil {
		return "", err
	}
	client := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peer := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	p, err := StartProcess(ctx, cp.cfg.Dir, "etcd", filepath.Join(cp.cfg.BinDir, "etcd"),
		"--name=gpupack", "--data-dir="+filepath.Join(cp.cfg.Dir, "etcd-data"),
		"--listen-client-urls="+client, "--advertise-client-urls="+client,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=gpupack="+peer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return "", err
	}
	cp.procs = append(cp.procs, p)
	return client, cp.waitHTTP(ctx, p, client+"/health", nil)
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, etcdURL string) error {
	certDir := filepath.Join(cp.cfg.Dir, "certs")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return fmt.Errorf("creating cert dir: %w", err)
	}
	saKey, err := writeServiceAccountKey(certDir)
	if err != nil {
		return err
	}
	tokens, err := cp.writeTokens()
	if err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	admission, err := cp.writeAdmissionConfig()
	if err != nil {
		return err
	}
	cp.URL = "https://127.0.0.1:" + strconv.Itoa(ports[0])
	p, err := StartProcess(ctx, cp.cfg.Dir, "kube-apiserver", filepath.Join(cp.cfg.BinDir, "kube-apiserver"),
		"--etcd-servers="+etcdURL, "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports[0]), "--cert-dir="+certDir,
		"--token-auth-file="+tokens, "--authorization-mode=RBAC",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/16",
		// Nothing runs a controller-manager: no taint remover, no default ServiceAccount.
		"--disable-admission-plugins=TaintNodesByCondition,ServiceAccount",
		"--endpoint-reconciler-type=none", "--allow-privileged=true", "--v=0",
		"--admission-control-config-file="+admission)
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	if err := cp.waitHTTP(ctx, p, cp.URL+"/readyz", map[string]string{"Authorization": "Bearer " + cp.AdminToken}); err != nil {
		return err
	}
	return cp.writeKubeconfig()
}

// writeAdmissionConfig writes the apiserver's AdmissionConfiguration: the
// PodSecurity defaults of cfg.PodSecurity (privileged when empty).
func (cp *ControlPlane) writeAdmissionConfig() (string, error) {
	level := cp.cfg.PodSecurity
	switch level {
	case "":
		level = "privileged"
	case "privileged", "baseline", "restricted":
	default:
		return "", fmt.Errorf("PodSecurity %q: want privileged, baseline or restricted", level)
	}
	cfg := fmt.Sprintf(`apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: PodSecurity
    configuration:
      apiVersion: pod-security.admission.config.k8s.io/v1
      kind: PodSecurityConfiguration
      defaults:
        enforce: %[1]s
        enforce-version: latest
        warn: %[1]s
        warn-version: latest
        audit: %[1]s
        audit-version: latest
`, level)
	path := filepath.Join(cp.cfg.Dir, "admission.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return "", fmt.Errorf("writing the admission config: %w", err)
	}
	return path, nil
}

// writeTokens writes the static token file: the admin plus cfg.Users.
func (cp *ControlPlane) writeTokens() (string, error) {
	cp.AdminToken = randomToken()
	lines := []string{fmt.Sprintf("%s,gpupack-admin,gpupack-admin,\"system:masters\"", cp.AdminToken)}
	for i, u := range cp.cfg.Users {
		lines = append(lines, fmt.Sprintf("%s,%s,uid-%d,\"%s\"", u.Token, u.User, i, strings.Join(u.Groups, ",")))
	}
	path := filepath.Join(cp.cfg.Dir, "tokens.csv")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing token file: %w", err)
	}
	return path, nil
}

func (cp *ControlPlane) writeKubeconfig() error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["gpupack"] = &clientcmdapi.Cluster{Server: cp.URL, InsecureSkipTLSVerify: true}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{Token: cp.AdminToken}
	kc.Contexts["gpupack"] = &clientcmdapi.Context{Cluster: "gpupack", AuthInfo: "admin"}
	kc.CurrentContext = "gpupack"
	cp.Kubeconfig = filepath.Join(cp.cfg.Dir, "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, cp.Kubeconfig); err != nil {
		return fmt.Errorf("writing kubeconfig: %w", err)
	}
	return nil
}

// RESTConfig returns a client config for the admin, or for token when set.
func (cp *ControlPlane) RESTConfig(token string) *rest.Config {
	if token == "" {
		token = cp.AdminToken
	}
	return &rest.Config{
		Host:            cp.URL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true},
		QPS:             1000,
		Burst:           2000,
	}
}

// StartKwok starts kwok managing nodes annotated kwok.x-k8s.io/node=fake.
func (cp *ControlPlane) StartKwok(ctx context.Context) error {
	p, err := StartProcess(ctx, cp.cfg.Dir, "kwok", filepath.Join(cp.cfg.BinDir, "kwok"),
		"--kubeconfig="+cp.Kubeconfig,
		"--config="+filepath.Join(cp.cfg.BinDir, "kwok-stages.yaml"),
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:0")
	if err != nil {
		return err
	}
	cp.procs = append(cp.procs, p)
	time.Sleep(200 * time.Millisecond)
	if done, werr := p.exited(); done {
		return fmt.Errorf("kwok exited at start: %v: %s", werr, p.Tail(2048))
	}
	return nil
}

// Stop stops every process in reverse start order (kwok, apiserver, etcd).
func (cp *ControlPlane) Stop(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for i := len(cp.procs) - 1; i >= 0; i-- {
		if err := cp.procs[i].Stop(10 * time.Second); err != nil {
			logger.Error(err, "Stopping process", "name", cp.procs[i].name)
		}
	}
	cp.procs = nil
}

// waitHTTP polls url until it answers 200, the process dies, or the timeout.
func (cp *ControlPlane) waitHTTP(ctx context.Context, p *Process, url string, headers map[string]string) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // self-signed loopback test cert
	}}
	deadline := time.Now().Add(cp.cfg.StartTimeout)
	for time.Now().Before(deadline) {
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited before it was ready: %v: %s", p.name, err, p.Tail(4096))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("building readiness request: %w", err)
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", p.name, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready after %s: %s", p.name, cp.cfg.StartTimeout, p.Tail(4096))
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeServiceAccountKey(dir string) (string, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", fmt.Errorf("generating service-account key: %w", err)
	}
	path := filepath.Join(dir, "sa.key")
	block := &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("writing service-account key: %w", err)
	}
	return path, nil
}

func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
