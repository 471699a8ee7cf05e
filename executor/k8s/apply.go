package k8s

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"

	"github.com/nodeexec/nodeexec/executor"
)

// Object names one object a manifest applied or a selector deleted.
type Object struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (o Object) String() string {
	if o.Namespace == "" {
		return o.Kind + " " + o.Name
	}
	return o.Kind + " " + o.Namespace + "/" + o.Name
}

// MaxManifestObjects bounds the objects of one manifest.
const MaxManifestObjects = 500

// errNoDynamic is what the operations that work on any kind say when the executor has no dynamic client.
var errNoDynamic = errors.New("this executor has no dynamic client (k8s.Config.Dynamic): it cannot apply manifests or delete by labels")

// Apply server-side-applies every object of a multi-document YAML (or JSON) manifest, in order, as
// field manager "nodeexec", taking over fields others set: the manifest is the truth. Objects without
// a namespace go to namespace (when their kind has one). The whole manifest is read and every kind
// resolved before anything is applied, so a typo applies nothing; the API server has no transactions,
// so an object the server refuses stops the run there, and the error says which objects went in.
func (e *Executor) Apply(ctx context.Context, namespace string, manifest []byte) ([]Object, error) {
	if e.dyn == nil {
		return nil, errNoDynamic
	}
	if namespace != "" && !validNamespace(namespace) {
		return nil, fmt.Errorf("%q is not a namespace name", namespace)
	}
	plan, err := e.plan(namespace, manifest)
	if err != nil {
		return nil, err
	}
	done := make([]Object, 0, len(plan))
	for _, p := range plan {
		if _, err := p.res.Apply(ctx, p.obj.GetName(), p.obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
			return done, fmt.Errorf("apply %s (after %d of %d applied): %w", p.id, len(done), len(plan), err)
		}
		done = append(done, p.id)
		e.log.WithField("object", p.id.String()).Info("applied")
	}
	return done, nil
}

// planned is one object of a manifest, ready to apply: its kind found in the cluster, its namespace set.
type planned struct {
	obj *unstructured.Unstructured
	res dynamic.ResourceInterface
	id  Object
}

// plan reads every document of a manifest and finds each object's resource, changing nothing.
func (e *Executor) plan(namespace string, manifest []byte) ([]planned, error) {
	objs, err := decodeManifest(manifest)
	if err != nil {
		return nil, badManifest(err)
	}
	plan := make([]planned, 0, len(objs))
	for i, obj := range objs {
		gvk := obj.GroupVersionKind()
		mapping, err := e.mapping(gvk)
		if errors.Is(err, errNoKind) {
			return nil, badManifest(fmt.Errorf("document %d (%s %s): %w", i+1, gvk.Kind, obj.GetName(), err))
		}
		if err != nil {
			return nil, fmt.Errorf("document %d (%s %s): find its kind in the cluster: %w", i+1, gvk.Kind, obj.GetName(), err)
		}
		var res dynamic.ResourceInterface = e.dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			switch ns := obj.GetNamespace(); {
			case ns == "" && namespace == "":
				return nil, badManifest(fmt.Errorf("document %d (%s %s): no namespace, and none was given", i+1, gvk.Kind, obj.GetName()))
			case ns == "":
				obj.SetNamespace(namespace)
			case namespace != "" && ns != namespace:
				return nil, badManifest(fmt.Errorf("document %d (%s %s): its namespace %q is not the requested %q", i+1, gvk.Kind, obj.GetName(), ns, namespace))
			}
			res = e.dyn.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		plan = append(plan, planned{obj: obj, res: res, id: Object{Kind: gvk.Kind, Namespace: obj.GetNamespace(), Name: obj.GetName()}})
	}
	return plan, nil
}

// errNoKind is a manifest's kind the cluster does not serve.
var errNoKind = errors.New("the cluster has no kind")

// badManifest is a manifest the caller must fix: a 400 naming the document, not a cluster failure.
func badManifest(err error) error {
	return &executor.ValidationError{Field: "manifest", Reason: err.Error()}
}

// decodeManifest reads every document of a manifest; empty documents are skipped.
func decodeManifest(manifest []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		switch {
		case obj.GetAPIVersion() == "" || obj.GetKind() == "":
			return nil, fmt.Errorf("document %d: apiVersion and kind are required", doc)
		case obj.IsList():
			return nil, fmt.Errorf("document %d: a %s: give its items as documents of their own", doc, obj.GetKind())
		case obj.GetName() == "":
			return nil, fmt.Errorf("document %d (%s): metadata.name is required", doc, obj.GetKind())
		}
		if len(out) == MaxManifestObjects {
			return nil, fmt.Errorf("more than %d objects in one manifest", MaxManifestObjects)
		}
		out = append(out, obj)
	}
	if len(out) == 0 {
		return nil, errors.New("the manifest has no objects")
	}
	return out, nil
}

// mapping finds the resource of a kind, asking the API server again once when it is unknown (a kind a
// CRD just added).
func (e *Executor) mapping(gvk schema.GroupVersionKind) (*meta.RESTMapping, error) {
	m, err := e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		e.mapper.Reset()
		m, err = e.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if meta.IsNoMatchError(err) {
		return nil, fmt.Errorf("%w %s in %s", errNoKind, gvk.Kind, gvk.GroupVersion())
	}
	return m, err
}

// deletable are the kinds DeleteByLabels removes; their pods and ReplicaSets go with them.
var deletable = []struct {
	kind string
	gvr  schema.GroupVersionResource
}{
	{"Deployment", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}},
	{"StatefulSet", schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "statefulsets"}},
	{"Service", schema.GroupVersionResource{Version: "v1", Resource: "services"}},
	{"ConfigMap", schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}},
	{"Secret", schema.GroupVersionResource{Version: "v1", Resource: "secrets"}},
}

// DeleteByLabels deletes the Deployments, StatefulSets, Services, ConfigMaps and Secrets of namespace
// that selector picks (their pods go with them, in the background) and names what it deleted. An
// empty selector is refused: it would pick everything.
func (e *Executor) DeleteByLabels(ctx context.Context, namespace, selector string) ([]Object, error) {
	if e.dyn == nil {
		return nil, errNoDynamic
	}
	if !validNamespace(namespace) {
		return nil, fmt.Errorf("%q is not a namespace name", namespace)
	}
	sel, err := labels.Parse(selector)
	if err != nil {
		return nil, fmt.Errorf("label selector %q: %w", selector, err)
	}
	if sel.Empty() {
		return nil, errors.New("an empty label selector would delete everything in the namespace: give one")
	}
	background := metav1.DeletePropagationBackground
	var deleted []Object
	for _, k := range deletable {
		res := e.dyn.Resource(k.gvr).Namespace(namespace)
		list, err := res.List(ctx, metav1.ListOptions{LabelSelector: sel.String()})
		if err != nil {
			return deleted, fmt.Errorf("list %ss: %w", k.kind, err)
		}
		for _, item := range list.Items {
			err := res.Delete(ctx, item.GetName(), metav1.DeleteOptions{PropagationPolicy: &background})
			if err != nil && !isNotFound(err) {
				return deleted, fmt.Errorf("delete %s %s/%s: %w", k.kind, namespace, item.GetName(), err)
			}
			deleted = append(deleted, Object{Kind: k.kind, Namespace: namespace, Name: item.GetName()})
		}
	}
	e.log.WithFields(logrus.Fields{"namespace": namespace, "selector": sel.String(), "deleted": len(deleted)}).Info("deleted by labels")
	return deleted, nil
}
