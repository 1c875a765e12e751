package main

import (
	"os"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes the admin kubeconfig with the certificates inlined,
// so it stays valid when copied and across restarts on the same data dir.
func writeKubeconfig(st *state) error {
	ca, err := os.ReadFile(st.pki("ca.crt"))
	if err != nil {
		return err
	}
	crt, err := os.ReadFile(st.pki("admin.crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(st.pki("admin.key"))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["pynomaly"] = &clientcmdapi.Cluster{Server: st.apiserverURL(), CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: crt, ClientKeyData: key}
	cfg.Contexts["pynomaly"] = &clientcmdapi.Context{Cluster: "pynomaly", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "pynomaly"
	return clientcmd.WriteToFile(*cfg, st.kubeconfigPath())
}

func restConfig(st *state) (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", st.kubeconfigPath())
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "pynomaly-controlplane"
	return cfg, nil
}

func newClient(st *state) (kubernetes.Interface, error) {
	cfg, err := restConfig(st)
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}
