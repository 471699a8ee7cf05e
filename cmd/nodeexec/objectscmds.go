package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/nodeexec/nodeexec/api"
	"github.com/nodeexec/nodeexec/executor"
)

// The Kubernetes objects commands: apply a manifest, delete by label selector, list pods. Each asks the
// server once and prints its answer; apply and delete print the ended record, object by object.

// maxManifest bounds what apply reads from its file (the server's body limit is 1 MiB by default).
const maxManifest = 1 << 20

// applyCmd server-side-applies a manifest's objects in a namespace. It succeeds when every object went in.
func applyCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("apply", &o)
	ns := namespaceFlag(fs)
	var file string
	fs.StringVar(&file, "f", "", "the manifest: a YAML (multi-document) or JSON file; - reads standard input")
	fs.StringVar(&file, "file", "", "same as -f")
	dryRun := fs.Bool("dry-run", false, "the API server checks everything and stores nothing")
	service := fs.String("service", "", "the service the record is listed under (default: the namespace)")
	key := fs.String("idempotency-key", "", "the same key again answers the same record instead of applying twice")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if file == "" {
		return false, &executor.ValidationError{Field: "file", Reason: "give the manifest with -f FILE (- for standard input)"}
	}
	manifest, err := readManifest(file)
	if err != nil {
		return false, err
	}
	if err := validObjectsRequest(*ns, *key); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	d, err := c.Apply(ctx, api.ApplyRequest{Namespace: *ns, Manifest: manifest, DryRun: *dryRun, Service: *service,
		IdempotencyKey: *key, RequestedBy: envOr("USER", "")})
	if err != nil {
		return false, err
	}
	return d.State == api.StateSuccess, o.printDeployment(d)
}

// deleteCmd deletes the objects a label selector picks in a namespace. It succeeds when every one went.
func deleteCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("delete", &o)
	ns := namespaceFlag(fs)
	var selector string
	fs.StringVar(&selector, "l", "", "label selector, e.g. app=web (one that picks everything is refused)")
	fs.StringVar(&selector, "selector", "", "same as -l")
	dryRun := fs.Bool("dry-run", false, "name what would be deleted; delete nothing")
	service := fs.String("service", "", "the service the record is listed under (default: the namespace)")
	key := fs.String("idempotency-key", "", "the same key again answers the same record instead of deleting twice")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if err := validObjectsRequest(*ns, *key); err != nil {
		return false, err
	}
	if err := executor.ValidateDeleteSelector(selector); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	d, err := c.DeleteResources(ctx, api.DeleteRequest{Namespace: *ns, Selector: selector, DryRun: *dryRun, Service: *service,
		IdempotencyKey: *key, RequestedBy: envOr("USER", "")})
	if err != nil {
		return false, err
	}
	return d.State == api.StateSuccess, o.printDeployment(d)
}

// podsCmd lists the pods a label selector picks in a namespace (all without one).
func podsCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("pods", &o)
	ns := namespaceFlag(fs)
	var selector string
	fs.StringVar(&selector, "l", "", "label selector, e.g. app=web (default: every pod of the namespace)")
	fs.StringVar(&selector, "selector", "", "same as -l")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	if err := executor.ValidateNamespace(*ns); err != nil {
		return false, err
	}
	if err := executor.ValidateSelector(selector); err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	list, err := c.PodStatus(ctx, *ns, selector)
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, list)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tPHASE\tREADY\tRESTARTS\tNODE\tCREATED")
	for _, p := range list.Pods {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%s\t%s\n", p.Name, p.Phase, p.Ready, p.Restarts, dash(p.Node), p.Created.Local().Format(time.DateTime))
	}
	if err := tw.Flush(); err != nil {
		return false, err
	}
	if list.Truncated {
		fmt.Fprintf(o.out, "only the oldest %d pods: narrow the selector to see the others\n", len(list.Pods))
	}
	return true, nil
}

// historyCmd prints a Kubernetes workload's revisions, newest first, as `kubectl rollout history`; or,
// with --service, the deployments that touched a service or one of its nodes.
func historyCmd(ctx context.Context, args []string) (bool, error) {
	var o clientOpts
	fs := clientFlags("history", &o)
	var ref string
	fs.StringVar(&ref, "w", "", "the workload: namespace/Kind/name[:container] (Kind Deployment or StatefulSet)")
	fs.StringVar(&ref, "workload", "", "same as -w")
	var h serviceHistory
	fs.StringVar(&h.service, "service", "", "instead of -w: the deployments that touched this service, newest first")
	fs.StringVar(&h.node, "node", "", "with --service: only those that touched this node (a host, or a workload's namespace/name)")
	fs.IntVar(&h.limit, "limit", 20, "with --service: how many (1-200)")
	fs.StringVar(&h.cursor, "cursor", "", "with --service: the next page, as a previous history printed")
	if _, err := parseArgs(fs, args, 0, ""); err != nil {
		return false, err
	}
	switch {
	case ref != "" && h.service != "":
		return false, &executor.ValidationError{Field: "--service", Reason: "give -w for a workload's revisions, or --service for a service's deployments, not both"}
	case h.service != "" || h.node != "":
		return h.print(ctx, &o)
	}
	w, err := oneWorkload(ref)
	if err != nil {
		return false, err
	}
	c, err := o.client()
	if err != nil {
		return false, err
	}
	list, err := c.Revisions(ctx, api.Workload(w))
	if err != nil {
		return false, err
	}
	if o.json() {
		return true, writeJSON(o.out, list)
	}
	tw := tabwriter.NewWriter(o.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REVISION\tIMAGE\tCHANGE-CAUSE\tCREATED\tCURRENT")
	for _, r := range list.Revisions {
		current := ""
		if r.Current {
			current = "*"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", r.Revision, dash(r.Image), dash(r.ChangeCause), r.Created.Local().Format(time.DateTime), current)
	}
	return true, tw.Flush()
}

func namespaceFlag(fs *flag.FlagSet) *string {
	var ns string
	fs.StringVar(&ns, "n", "", "Kubernetes namespace")
	fs.StringVar(&ns, "namespace", "", "same as -n")
	return &ns
}

func validObjectsRequest(namespace, key string) error {
	if err := executor.ValidateNamespace(namespace); err != nil {
		return err
	}
	return validLabels(key, envOr("USER", ""))
}

// readManifest reads the manifest file ("-": standard input), refusing one over maxManifest.
func readManifest(file string) (string, error) {
	var r io.Reader = os.Stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", &executor.ValidationError{Field: "file", Reason: err.Error()}
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxManifest+1))
	if err != nil {
		return "", fmt.Errorf("manifest: %w", err)
	}
	if len(data) > maxManifest {
		return "", &executor.ValidationError{Field: "file", Reason: fmt.Sprintf("the manifest is over %d bytes: split it", maxManifest)}
	}
	return string(data), nil
}

// printObjects is an apply's or a delete's record, object by object.
func printObjects(tw *tabwriter.Writer, d *api.Deployment) error {
	if d.DryRun {
		fmt.Fprintln(tw, "(dry run: nothing was changed)")
	}
	fmt.Fprintln(tw, "KIND\tNAMESPACE\tNAME\tOUTCOME\tERROR")
	for _, ob := range d.Objects {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", ob.Kind, dash(ob.Namespace), ob.Name, ob.Outcome, ob.Error)
	}
	return tw.Flush()
}
