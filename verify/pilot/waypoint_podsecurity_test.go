package pilot

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshdemo/meshdemo/deploy/matrix"
	"istio.io/istio/pilot/pkg/config/kube/gatewaycommon"
	"istio.io/istio/pilot/pkg/model"
	"istio.io/istio/pkg/cluster"
	"istio.io/istio/pkg/config/mesh/meshwatcher"
	"istio.io/istio/pkg/kube"
	"istio.io/istio/pkg/kube/inject"
	"istio.io/istio/pkg/kube/kclient"
	"istio.io/istio/pkg/revisions"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// The ambient flavour's waypoint runs in meshdemo, so Pod Security restricted applies to it too.
// Its Deployment is written by istiod's gateway deployment controller
// (pilot/pkg/config/kube/gatewaycommon DeploymentController) from the `waypoint` template of the
// injector's ConfigMap. The test runs that controller on Istio's fake kube client with the kind
// install's templates, values and mesh config, hands it the rendered Gateway `waypoint`, and takes
// the Deployment the controller applies: it writes by server-side apply, which the fake dynamic
// client does not implement, so a reactor on the fake (client-go testing, the public hook of
// dynamicfake.FakeDynamicClient) records the apply patch instead of storing it.

// waypointDeploymentPod runs istiod's deployment controller over the Gateway and returns the pod template of
// the Deployment it applies.
func waypointDeploymentPod(t *testing.T, inj injector, gwObj object) (podOf, error) {
	t.Helper()
	b, err := json.Marshal(map[string]any(gwObj))
	if err != nil {
		return podOf{}, err
	}
	var gw gwv1.Gateway
	if err := json.Unmarshal(b, &gw); err != nil {
		return podOf{}, err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gw.Namespace}}
	client := kube.NewFakeClient(ns)
	deployments := make(chan []byte, 4)
	// Every apply (ServiceAccount, Service, Deployment, Gateway status) is taken as done; the
	// Deployment's is kept.
	client.Dynamic().(*dynamicfake.FakeDynamicClient).PrependReactor("patch", "*",
		func(a clienttesting.Action) (bool, runtime.Object, error) {
			if a.GetResource().Resource == "deployments" {
				select {
				case deployments <- a.(clienttesting.PatchAction).GetPatch():
				default:
				}
			}
			return true, nil, nil
		})
	kclient.NewWriteClient[*gwv1.Gateway](client).Create(&gw)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	env := model.NewEnvironment()
	env.Watcher = meshwatcher.NewTestWatcher(inj.mesh)
	env.PushContext().InitDone.Store(true)
	tw := revisions.NewTagWatcher(client, "", "istio-system")
	go tw.Run(stop)
	webhook := func() inject.WebhookConfig {
		return inject.WebhookConfig{Templates: inj.templates, Values: inj.values, MeshConfig: inj.mesh}
	}
	d := gatewaycommon.NewDeploymentController(client, cluster.ID("Kubernetes"), env, webhook, func(func()) {}, tw, "", "istio-system")
	client.RunAndWait(stop)
	go d.Run(stop)
	select {
	case patch := <-deployments:
		var dep appsv1.Deployment
		if err := json.Unmarshal(patch, &dep); err != nil {
			return podOf{}, fmt.Errorf("the controller's Deployment: %w", err)
		}
		spec := dep.Spec.Template.Spec
		apiServerDefaults(&spec)
		return podOf{name: "Deployment/" + dep.Name, meta: dep.Spec.Template.ObjectMeta, spec: spec}, nil
	case <-time.After(30 * time.Second):
		return podOf{}, fmt.Errorf("istiod's deployment controller applied no Deployment for Gateway %s/%s in 30s", gw.Namespace, gw.Name)
	}
}

// The waypoint pod istiod would create for istio/ambient/base's Gateway passes restricted with the
// ambient kind install; without the gateways' seccomp profile (istio/sidecar/install.yaml) it would not.
func TestAmbientWaypointPodSecurity(t *testing.T) {
	requireAmbient(t)
	gw, err := one(render(t, matrix.Ambient, ""), "Gateway", "waypoint")
	if err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	var files []string
	for _, p := range matrix.Ambient.InstallFiles() {
		files = append(files, filepath.Join(root, p))
	}
	p, err := waypointDeploymentPod(t, kindInjector(t, files), gw)
	if err != nil {
		t.Fatal(err)
	}
	if err := restrictedViolations([]podOf{p}); err != nil {
		t.Error(err)
	}
	t.Logf("%s: %d containers, restricted:latest", p.name, len(p.spec.Containers))

	// istio/sidecar/install.yaml without its values.gateways.seccompProfile: the template sets no
	// pod-level profile, so the waypoint's only container has none and restricted refuses it.
	t.Run("broken/no-gateway-seccomp", func(t *testing.T) {
		install, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		const gatewaySeccomp = "\n      seccompProfile:\n        type: RuntimeDefault\n"
		if strings.Count(string(install), gatewaySeccomp) != 1 {
			t.Fatalf("fixture no longer applies: %q not once in %s", gatewaySeccomp, files[0])
		}
		broken := filepath.Join(t.TempDir(), "istio.yaml")
		if err := os.WriteFile(broken, []byte(strings.Replace(string(install), gatewaySeccomp, "\n", 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := waypointDeploymentPod(t, kindInjector(t, append([]string{broken}, files[1:]...)), gw)
		if err != nil {
			t.Fatal(err)
		}
		err = restrictedViolations([]podOf{p})
		if err == nil {
			t.Fatal("the waypoint without a seccomp profile passed")
		}
		if !strings.Contains(err.Error(), "seccompProfile") {
			t.Errorf("refused, but not for its seccomp profile: %v", err)
		}
		t.Logf("refused as expected: %v", err)
	})
}
