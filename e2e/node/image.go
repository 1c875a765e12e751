package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// imageCommand writes a single-layer OCI image archive from local files, for
// `ctr images import` (no registry can be reached here, so the pause image and
// the test image are built from binaries compiled in this repository).
//
//	node image --out pause.tar --name pynomaly.local/pause:1 --entrypoint /pause BIN=/pause
func imageCommand(args []string) error {
	fs := flag.NewFlagSet("image", flag.ContinueOnError)
	out := fs.String("out", "", "archive to write")
	name := fs.String("name", "", "image reference, e.g. pynomaly.local/pause:1")
	entrypoint := fs.String("entrypoint", "", "entrypoint (space separated)")
	user := fs.String("user", "65535:65535", "default user uid:gid")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *name == "" || fs.NArg() == 0 {
		return fmt.Errorf("usage: node image --out X.tar --name REF [--entrypoint CMD] [--user U:G] SRC=DST...")
	}
	files := map[string]string{}
	for _, a := range fs.Args() {
		src, dst, ok := strings.Cut(a, "=")
		if !ok || !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("%q: want SRC=/DST", a)
		}
		files[dst] = src
	}
	layer, err := layerTar(files)
	if err != nil {
		return err
	}
	archive, err := ociArchive(*name, layer, strings.Fields(*entrypoint), *user)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, archive, 0o644)
}

// layerTar holds the files (mode 0755, root-owned) and their parent
// directories, plus an empty /tmp, in a deterministic order and timestamp.
func layerTar(files map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	dirs := map[string]bool{"tmp": true}
	var dsts []string
	for dst := range files {
		dsts = append(dsts, dst)
		for d := path.Dir(strings.TrimPrefix(dst, "/")); d != "." && d != ""; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var dirList []string
	for d := range dirs {
		dirList = append(dirList, d)
	}
	sort.Strings(dirList)
	for _, d := range dirList {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	sort.Strings(dsts)
	for _, dst := range dsts {
		data, err := os.ReadFile(files[dst])
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(dst, "/"), Mode: 0o755, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int               `json:"size"`
	Platform    map[string]string `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ociArchive wraps one layer into an OCI image layout tar whose index names
// the image the way `ctr images import` reads it.
func ociArchive(name string, layer []byte, entrypoint []string, user string) ([]byte, error) {
	cfg := map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint": entrypoint,
			"User":       user,
			"WorkingDir": "/",
			"Env":        []string{"PATH=/"},
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digestOf(layer)}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        descriptor{MediaType: "application/vnd.oci.image.config.v1+json", Digest: digestOf(cfgJSON), Size: len(cfgJSON)},
		"layers":        []descriptor{{MediaType: "application/vnd.oci.image.layer.v1.tar", Digest: digestOf(layer), Size: len(layer)}},
	}
	manJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	tag := name[strings.LastIndex(name, ":")+1:]
	index := map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []descriptor{{
			MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: digestOf(manJSON), Size: len(manJSON),
			Platform:    map[string]string{"architecture": "amd64", "os": "linux"},
			Annotations: map[string]string{"io.containerd.image.name": name, "org.opencontainers.image.ref.name": tag},
		}},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	epoch := time.Unix(0, 0)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	for _, blob := range [][]byte{layer, cfgJSON, manJSON} {
		if err := add("blobs/sha256/"+strings.TrimPrefix(digestOf(blob), "sha256:"), blob); err != nil {
			return nil, err
		}
	}
	if err := add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return nil, err
	}
	if err := add("index.json", indexJSON); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
