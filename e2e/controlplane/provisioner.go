package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// The fake provisioner. Nothing here can attach disks, yet StatefulSets with
// volumeClaimTemplates must get their pods Running: the scheduler refuses
// pods whose PVCs are unbound. So, for every Pending PVC, we create a
// hostPath PersistentVolume pre-bound to it (claimRef) and let the stock
// persistentvolume-binder controller finish the bind. No data is ever
// written by KWOK pods (they run no containers); on the real node
// (e2e/node, make cluster REAL_NODE=1) Postgres and Redis do write there, so
// the directory is created world-writable under the state dir (pods run as
// uid 10001 and fsGroup does not apply to hostPath). PVs we made are deleted,
// with their directory, once their claim is gone (phase Released), standing
// in for reclaimPolicy Delete; cluster.sh stop removes what remains.
const (
	fakeProvisioner  = "pynomaly.test/fake-hostpath"
	defaultClass     = "standard"
	provisionedLabel = "pynomaly.test/fake-provisioned"
)

// StorageClass is the cluster's default class. Its provisioner is a name
// only: the fake provisioner serves PVCs of any class.
func StorageClass() *storagev1.StorageClass {
	bind := storagev1.VolumeBindingImmediate
	reclaim := corev1.PersistentVolumeReclaimDelete
	return &storagev1.StorageClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        defaultClass,
			Annotations: map[string]string{"storageclass.kubernetes.io/is-default-class": "true"},
		},
		Provisioner:       fakeProvisioner,
		ReclaimPolicy:     &reclaim,
		VolumeBindingMode: &bind,
	}
}

func ensureDefaultStorageClass(ctx context.Context, client kubernetes.Interface) error {
	_, err := client.StorageV1().StorageClasses().Create(ctx, StorageClass(), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// PersistentVolume builds the volume that satisfies one claim.
func PersistentVolume(pvc *corev1.PersistentVolumeClaim, root string) *corev1.PersistentVolume {
	size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
	if size.IsZero() {
		size = resource.MustParse("1Gi")
	}
	class := ""
	if pvc.Spec.StorageClassName != nil {
		class = *pvc.Spec.StorageClassName
	}
	modes := pvc.Spec.AccessModes
	if len(modes) == 0 {
		modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	hostPathType := corev1.HostPathDirectoryOrCreate
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "pvc-" + string(pvc.UID),
			Labels:      map[string]string{provisionedLabel: "true"},
			Annotations: map[string]string{"pv.kubernetes.io/provisioned-by": fakeProvisioner},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: size},
			AccessModes:                   modes,
			StorageClassName:              class,
			VolumeMode:                    pvc.Spec.VolumeMode,
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{
				Kind:       "PersistentVolumeClaim",
				APIVersion: "v1",
				Namespace:  pvc.Namespace,
				Name:       pvc.Name,
				UID:        pvc.UID,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{
				HostPath: &corev1.HostPathVolumeSource{
					Path: volumeDir(root, pvc.UID),
					Type: &hostPathType,
				},
			},
		},
	}
}

// runFakeProvisioner polls once a second; a poll is cheap at test scale
// and, unlike a watch, needs no resync logic across API server restarts.
func runFakeProvisioner(ctx context.Context, client kubernetes.Interface, root string) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		provisionOnce(ctx, client, root)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// volumeDir is the hostPath of the volume for one claim (by UID: a claim
// re-created under the same name starts empty, as with a real provisioner).
func volumeDir(root string, uid types.UID) string {
	return filepath.Join(root, string(uid))
}

func provisionOnce(ctx context.Context, client kubernetes.Interface, root string) {
	claims, err := client.CoreV1().PersistentVolumeClaims("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	for i := range claims.Items {
		pvc := &claims.Items[i]
		if pvc.Status.Phase != corev1.ClaimPending || pvc.Spec.VolumeName != "" || pvc.DeletionTimestamp != nil {
			continue
		}
		pv := PersistentVolume(pvc, root)
		dir := pv.Spec.HostPath.Path
		if err := os.MkdirAll(dir, 0o777); err != nil {
			logf("fake provisioner: %v", err)
			continue
		}
		_ = os.Chmod(dir, 0o777) // any pod uid may write (MkdirAll is subject to the umask)
		_, err := client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
		if err == nil {
			logf("fake provisioner: %s for %s/%s", pv.Name, pvc.Namespace, pvc.Name)
		}
	}
	volumes, err := client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: provisionedLabel + "=true"})
	if err != nil {
		return
	}
	for _, pv := range volumes.Items {
		if pv.Status.Phase == corev1.VolumeReleased || pv.Status.Phase == corev1.VolumeFailed {
			if client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{}) == nil &&
				pv.Spec.HostPath != nil && strings.HasPrefix(pv.Spec.HostPath.Path, root+string(filepath.Separator)) {
				_ = os.RemoveAll(pv.Spec.HostPath.Path)
			}
		}
	}
}
