package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"time"

	"github.com/pynomaly/pynomaly-operator/e2e/clusterkit"
)

// ensurePKI creates, once per data dir, a CA, the API server's serving
// certificate, an admin client certificate (group system:masters) and the
// service-account signing key. Existing files are kept so that a restarted
// control plane still matches the kubeconfig handed out before.
func ensurePKI(st *state) error {
	if _, err := os.Stat(st.pki("sa.key")); err == nil {
		return ensureFrontProxy(st) // state dirs written before aggregation was on lack it
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          clusterkit.Serial(),
		Subject:               pkix.Name{CommonName: "pynomaly-test-ca"},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	if err := writeCertAndKey(st.pki("ca"), caDER, caKey); err != nil {
		return err
	}

	// 10.0.0.1 is the "kubernetes" Service IP in --service-cluster-ip-range.
	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if err := issue(st.pki("apiserver"), serving, ca, caKey, now); err != nil {
		return err
	}
	admin := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "pynomaly-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := issue(st.pki("admin"), admin, ca, caKey, now); err != nil {
		return err
	}

	// RSA for service-account tokens: RS256 is what every client library expects.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	if err := writePEM(st.pki("sa.pub"), "PUBLIC KEY", pubDER); err != nil {
		return err
	}
	if err := ensureFrontProxy(st); err != nil {
		return err
	}
	return writePEM(st.pki("sa.key"), "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))
}

// ensureFrontProxy issues the client certificate the API server's aggregator
// presents to extension API servers (metrics-server), once per data dir.
func ensureFrontProxy(st *state) error {
	if _, err := os.Stat(st.pki("front-proxy-client.key")); err == nil {
		return nil
	}
	ca, caKey, err := loadCA(st)
	if err != nil {
		return err
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "front-proxy-client"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return issue(st.pki("front-proxy-client"), client, ca, caKey, time.Now().Add(-time.Hour))
}

func loadCA(st *state) (*x509.Certificate, crypto.Signer, error) {
	crtPEM, err := os.ReadFile(st.pki("ca.crt"))
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := os.ReadFile(st.pki("ca.key"))
	if err != nil {
		return nil, nil, err
	}
	return clusterkit.ParseCA(crtPEM, keyPEM)
}

func issue(base string, tmpl, ca *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	der, key, err := clusterkit.Issue(tmpl, ca, caKey, now, 10*365*24*time.Hour)
	if err != nil {
		return err
	}
	return writeCertAndKey(base, der, key)
}

func writeCertAndKey(base string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return errors.Join(
		writePEM(base+".crt", "CERTIFICATE", der),
		writePEM(base+".key", "EC PRIVATE KEY", keyDER),
	)
}

func writePEM(path, kind string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600)
}
