package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeCredentials issues, from the control plane's CA, the kubelet's
// (system:node:<name> in system:nodes), kube-proxy's (system:kube-proxy, bound
// to system:node-proxier by the default RBAC policy) and metrics-server's
// serving certificate, and writes the kubeconfigs the node's processes use.
func writeCredentials(l layout, clusterDir string) error {
	caPEM, err := os.ReadFile(clusterDir + "/pki/ca.crt")
	if err != nil {
		return err
	}
	keyPEM, err := os.ReadFile(clusterDir + "/pki/ca.key")
	if err != nil {
		return err
	}
	ca, caKey, err := parseCA(caPEM, keyPEM)
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.path("pki", "ca.crt"), caPEM, 0o600); err != nil {
		return err
	}
	admin, err := clientcmd.LoadFromFile(clusterDir + "/kubeconfig")
	if err != nil {
		return err
	}
	if err := clientcmd.WriteToFile(*admin, l.path("admin.kubeconfig")); err != nil {
		return err
	}
	server := ""
	for _, c := range admin.Clusters {
		server = c.Server
	}
	clients := map[string]pkix.Name{
		"kubelet":    {CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		"kube-proxy": {CommonName: "system:kube-proxy"},
	}
	for name, subject := range clients {
		crt, key, err := issue(&x509.Certificate{Subject: subject, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, ca, caKey)
		if err != nil {
			return err
		}
		cfg := clientcmdapi.NewConfig()
		cfg.Clusters["local"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caPEM}
		cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
		cfg.Contexts["local"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: name}
		cfg.CurrentContext = "local"
		if err := clientcmd.WriteToFile(*cfg, l.path(name+".kubeconfig")); err != nil {
			return err
		}
	}
	crt, key, err := issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "metrics-server"},
		DNSNames:    []string{"metrics-server", "metrics-server.kube-system", "metrics-server.kube-system.svc"},
		IPAddresses: []net.IP{net.ParseIP(nodeIP)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, caKey)
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(l.path("pki", "metrics-server.crt"), crt, 0o600),
		os.WriteFile(l.path("pki", "metrics-server.key"), key, 0o600),
	)
}

func parseCA(crtPEM, keyPEM []byte) (*x509.Certificate, crypto.Signer, error) {
	crtBlock, _ := pem.Decode(crtPEM)
	keyBlock, _ := pem.Decode(keyPEM)
	if crtBlock == nil || keyBlock == nil {
		return nil, nil, errors.New("the cluster's pki/ca.crt or pki/ca.key is not PEM")
	}
	ca, err := x509.ParseCertificate(crtBlock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

func issue(tmpl, ca *x509.Certificate, caKey crypto.Signer) (crtPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	now := time.Now().Add(-time.Hour)
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now
	tmpl.NotAfter = now.Add(365 * 24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}
