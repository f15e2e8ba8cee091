// A stand-in for `helm template`, which cannot run on these machines: it renders a chart with
// Go's text/template and sprig (the two libraries Helm's engine is built on) and the functions
// Helm adds (include, tpl, required, toYaml, fromYaml, toJson, fromJson, lookup), following
// helm.sh/helm/v3/pkg/engine. Not Helm: no subcharts, no hooks ordering, no schema validation
// (the test checks values.schema.json itself). Built by test/helm-chart.test.ts from Debian's Go
// packages (GOPATH mode, no module downloads).
//
// usage: helm-render CHART_DIR VALUES.json RELEASE NAMESPACE [LOOKUP.json]
// prints a JSON object: template path -> rendered text (partials, files starting with _, omitted).
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	sprig "github.com/Masterminds/sprig"
	"github.com/ghodss/yaml"
)

type files map[string][]byte

// Get returns a file of the chart as a string, as Helm's .Files.Get does ("" when missing).
func (f files) Get(name string) string { return string(f[name]) }

type versionSet []string

func (v versionSet) Has(api string) bool {
	for _, a := range v {
		if a == api {
			return true
		}
	}
	return false
}

func die(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "helm-render: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 5 {
		die("usage: helm-render CHART_DIR VALUES.json RELEASE NAMESPACE [LOOKUP.json]")
	}
	chartDir, valuesFile, release, namespace := os.Args[1], os.Args[2], os.Args[3], os.Args[4]
	var values map[string]interface{}
	readJSON(valuesFile, &values)
	// lookup answers from a list of existing objects (an upgrade), or finds nothing (an install).
	var existing []map[string]interface{}
	if len(os.Args) > 5 {
		readJSON(os.Args[5], &existing)
	}

	chartYaml, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		die("%v", err)
	}
	var meta map[string]interface{}
	if err := yaml.Unmarshal(chartYaml, &meta); err != nil {
		die("Chart.yaml: %v", err)
	}
	chart := map[string]interface{}{
		"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"],
		"Description": meta["description"],
	}

	all := files{}
	var templates []string
	err = filepath.Walk(chartDir, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(chartDir, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		all[rel] = data
		if strings.HasPrefix(rel, "templates/") {
			templates = append(templates, rel)
		}
		return nil
	})
	if err != nil {
		die("%v", err)
	}
	sort.Strings(templates)

	t := template.New("gotpl").Option("missingkey=zero")
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env") // Helm removes these two: a chart must not read the renderer's environment
	delete(funcs, "expandenv")
	includedNames := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if includedNames[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		includedNames[name]++
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, name, data)
		includedNames[name]--
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		c, err := t.Clone()
		if err != nil {
			return "", err
		}
		if _, err := c.New("tpl").Parse(text); err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = c.ExecuteTemplate(&buf, "tpl", data)
		return buf.String(), err
	}
	funcs["required"] = func(msg string, v interface{}) (interface{}, error) {
		if v == nil {
			return nil, fmt.Errorf(msg)
		}
		if s, ok := v.(string); ok && s == "" {
			return nil, fmt.Errorf(msg)
		}
		return v, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		b, err := yaml.Marshal(v)
		if err != nil {
			return ""
		}
		return strings.TrimSuffix(string(b), "\n")
	}
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		b, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(b)
	}
	funcs["fromJson"] = func(s string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["lookup"] = func(apiVersion, kind, ns, name string) (map[string]interface{}, error) {
		for _, o := range existing {
			md, _ := o["metadata"].(map[string]interface{})
			if o["apiVersion"] == apiVersion && o["kind"] == kind && md["namespace"] == ns && md["name"] == name {
				return o, nil
			}
		}
		return map[string]interface{}{}, nil
	}
	t.Funcs(funcs)
	for _, name := range templates {
		if _, err := t.New(name).Parse(string(all[name])); err != nil {
			die("%v", err)
		}
	}

	isUpgrade := len(existing) > 0
	out := map[string]string{}
	for _, name := range templates {
		if strings.HasPrefix(filepath.Base(name), "_") {
			continue
		}
		data := map[string]interface{}{
			"Values": values,
			"Chart":  chart,
			"Release": map[string]interface{}{
				"Name": release, "Namespace": namespace, "Service": "Helm", "Revision": 1,
				"IsInstall": !isUpgrade, "IsUpgrade": isUpgrade,
			},
			"Capabilities": map[string]interface{}{
				"KubeVersion": map[string]interface{}{"Version": "v1.30.0", "Major": "1", "Minor": "30"},
				"APIVersions": versionSet{"v1", "apps/v1", "rbac.authorization.k8s.io/v1"},
			},
			"Files":    all,
			"Template": map[string]interface{}{"Name": name, "BasePath": "templates"},
		}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, name, data); err != nil {
			die("%v", err)
		}
		out[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		die("%v", err)
	}
}

func readJSON(file string, into interface{}) {
	b, err := os.ReadFile(file)
	if err != nil {
		die("%v", err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		die("%s: %v", file, err)
	}
}
