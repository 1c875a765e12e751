package main

import (
	"crypto"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/pynomaly/pynomaly-operator/e2e/clusterkit"
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
	ca, caKey, err := clusterkit.ParseCA(caPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("the cluster's CA: %w", err)
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

// issue signs tmpl with the cluster's CA for a year (from an hour ago, against
// clock skew); the certificate and its key as PEM.
func issue(tmpl, ca *x509.Certificate, caKey crypto.Signer) (crtPEM, keyPEM []byte, err error) {
	der, key, err := clusterkit.Issue(tmpl, ca, caKey, time.Now().Add(-time.Hour), 365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err = clusterkit.EncodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return clusterkit.EncodeCert(der), keyPEM, nil
}
