package manifests

import (
	"path"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestLoadtestRendersDecodeAndAreCovered: every kustomization under loadtest/deploy (the Job, its
// scenarios, the live page's Deployment) renders, decodes strictly, keeps the namespace's
// default-deny workable (each pod it runs is selected by a NetworkPolicy of the same render,
// as Kubernetes' own label-selector code matches them) and sets ephemeral-storage on every
// container, as the scenario renders must.
func TestLoadtestRendersDecodeAndAreCovered(t *testing.T) {
	t.Parallel()
	tree := sharedTree(t)
	var dirs []string
	tree.mu.Lock()
	for f := range tree.files {
		dir := path.Dir(f)
		// Components and the shared policy are parts of the renders, not renders.
		if path.Base(f) != "kustomization.yaml" || !strings.HasPrefix(dir, "loadtest/deploy") ||
			strings.HasPrefix(dir, "loadtest/deploy/components/") || dir == "loadtest/deploy/networkpolicy" {
			continue
		}
		dirs = append(dirs, dir)
	}
	tree.mu.Unlock()
	if len(dirs) < 4 {
		t.Fatalf("found %d loadtest kustomizations (%v), want at least deploy, live and two scenarios", len(dirs), dirs)
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			out, err := tree.Build(dir)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := Decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if err := loadtestProblems(objs); err != "" {
				t.Error(err)
			}
		})
	}
}

// loadtestProblems says what keeps a loadtest render from working in meshdemo's namespace.
func loadtestProblems(objs []Object) string {
	var policies []*networkingv1.NetworkPolicy
	var pods []*corev1.PodTemplateSpec
	var names []string
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *networkingv1.NetworkPolicy:
			policies = append(policies, v)
		case *batchv1.Job:
			pods, names = append(pods, &v.Spec.Template), append(names, o.ID())
		case *appsv1.Deployment:
			pods, names = append(pods, &v.Spec.Template), append(names, o.ID())
		}
	}
	var problems []string
	if len(pods) == 0 {
		problems = append(problems, "no Job or Deployment rendered")
	}
	for i, pod := range pods {
		if !selectedByAny(policies, pod.Labels) {
			problems = append(problems, names[i]+": no NetworkPolicy selects its pods (the namespace denies by default)")
		}
		for _, c := range pod.Spec.Containers {
			req, lim := c.Resources.Requests[corev1.ResourceEphemeralStorage], c.Resources.Limits[corev1.ResourceEphemeralStorage]
			if req.IsZero() || lim.IsZero() {
				problems = append(problems, names[i]+": container "+c.Name+": ephemeral-storage request and limit must both be set")
			}
		}
	}
	return strings.Join(problems, "; ")
}

func selectedByAny(policies []*networkingv1.NetworkPolicy, podLabels map[string]string) bool {
	for _, p := range policies {
		sel, err := metav1.LabelSelectorAsSelector(&p.Spec.PodSelector)
		if err == nil && sel.Matches(labels.Set(podLabels)) {
			return true
		}
	}
	return false
}

// TestLoadtestProblemsCatchBrokenRenders: a pod no policy selects and a container without
// ephemeral storage are both reported.
func TestLoadtestProblemsCatchBrokenRenders(t *testing.T) {
	t.Parallel()
	out, err := sharedTree(t).Build("loadtest/deploy/live")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := Decode(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		switch v := o.Typed.(type) {
		case *networkingv1.NetworkPolicy:
			v.Spec.PodSelector = metav1.LabelSelector{MatchLabels: map[string]string{"app": "loadtest"}}
		case *appsv1.Deployment:
			delete(v.Spec.Template.Spec.Containers[0].Resources.Limits, corev1.ResourceEphemeralStorage)
		}
	}
	got := loadtestProblems(objs)
	for _, want := range []string{"no NetworkPolicy selects its pods", "ephemeral-storage request and limit"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems %q, want one containing %q", got, want)
		}
	}
}
