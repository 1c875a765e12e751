package main

import (
	"fmt"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs etcd 3.6 in-process. Kubernetes 1.31+ needs etcd >= 3.5.13
// (watch progress requests), which no package available here ships.
// Fsync is off: this is throwaway test state, and fsync dominates latency.
func startEtcd(st *state) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name = "pynomaly"
	cfg.Dir = st.path("etcd")
	client, _ := url.Parse(st.etcdURL())
	peer, _ := url.Parse(st.etcdPeerURL())
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{*peer}
	cfg.InitialCluster = fmt.Sprintf("%s=%s", cfg.Name, st.etcdPeerURL())
	cfg.UnsafeNoFsync = true
	cfg.LogLevel = "error"
	cfg.Logger = "zap"
	cfg.LogOutputs = []string{st.logFile("etcd")}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case err := <-e.Err():
		e.Close()
		return nil, err
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("not ready after 60s")
	}
}
