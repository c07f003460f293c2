// Command ecsrun-statuscheck judges EcsTaskRuns the way GitOps tools do, with those tools' own code, so
// the tests check ecsrun's status against them instead of against a reading of their documentation.
//
//	ecsrun-statuscheck argo <health.lua>   Argo CD: the health script, run by gopher-lua (the Lua
//	                                       interpreter Argo CD embeds) with the libraries and the time
//	                                       limit Argo CD gives health scripts.
//	ecsrun-statuscheck kstatus             Flux (kustomize-controller's wait and health checks), kubectl
//	                                       and cli-utils: sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute.
//
// Reads a JSON array of objects on stdin and writes a JSON array of {"name", "status", "message"}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type verdict struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ecsrun-statuscheck:", err)
		os.Exit(1)
	}
}

func run(args []string, in io.Reader, out io.Writer) error {
	var objects []map[string]any
	decoder := json.NewDecoder(in)
	decoder.UseNumber()
	if err := decoder.Decode(&objects); err != nil {
		return fmt.Errorf("reading a JSON array of objects: %w", err)
	}
	var judge func(map[string]any) (verdict, error)
	switch {
	case len(args) == 2 && args[0] == "argo":
		script, err := os.ReadFile(args[1])
		if err != nil {
			return err
		}
		judge = func(object map[string]any) (verdict, error) { return argoHealth(string(script), object) }
	case len(args) == 1 && args[0] == "kstatus":
		judge = kstatus
	default:
		return fmt.Errorf("usage: ecsrun-statuscheck argo <health.lua> | kstatus")
	}
	verdicts := []verdict{}
	for _, object := range objects {
		v, err := judge(object)
		if err != nil {
			return err
		}
		v.Name, _, _ = unstructured.NestedString(object, "metadata", "name")
		verdicts = append(verdicts, v)
	}
	return json.NewEncoder(out).Encode(verdicts)
}

// Argo CD's health states (gitops-engine's health.HealthStatusCode); a script returning anything else
// makes Argo CD report Unknown.
var argoStates = map[string]bool{
	"Unknown": true, "Progressing": true, "Healthy": true, "Suspended": true, "Degraded": true, "Missing": true,
}

// argoHealth runs a resource health script as Argo CD's util/lua VM does: only the package, base and
// table libraries (no string or os library unless an admin sets useOpenLibs), the object as the global
// `obj`, one second to finish, and a table with `status` and `message` to return.
func argoHealth(script string, object map[string]any) (verdict, error) {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable,
	} {
		state.Push(state.NewFunction(open))
		state.Push(lua.LString(name))
		state.Call(1, 0)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(script); err != nil {
		return verdict{}, fmt.Errorf("the health script failed: %w", err)
	}
	returned, ok := state.Get(-1).(*lua.LTable)
	if !ok {
		return verdict{}, fmt.Errorf("the health script returned %s, not a table", state.Get(-1).Type())
	}
	v := verdict{Status: lua.LVAsString(returned.RawGetString("status")), Message: lua.LVAsString(returned.RawGetString("message"))}
	if !argoStates[v.Status] {
		return verdict{}, fmt.Errorf("the health script returned status %q, which Argo CD reports as Unknown", v.Status)
	}
	return v, nil
}

// toLua converts decoded JSON to Lua values as Argo CD does: objects and arrays become tables (arrays
// indexed from 1), numbers numbers.
func toLua(state *lua.LState, value any) lua.LValue {
	switch value := value.(type) {
	case map[string]any:
		table := state.NewTable()
		for key, item := range value {
			table.RawSetString(key, toLua(state, item))
		}
		return table
	case []any:
		table := state.NewTable()
		for index, item := range value {
			table.RawSetInt(index+1, toLua(state, item))
		}
		return table
	case string:
		return lua.LString(value)
	case bool:
		return lua.LBool(value)
	case json.Number:
		number, _ := value.Float64()
		return lua.LNumber(number)
	default:
		return lua.LNil
	}
}

func kstatus(object map[string]any) (verdict, error) {
	// kstatus reads integers (generation, observedGeneration) as int64, as client-go decodes them.
	converted, ok := toInt64s(object).(map[string]any)
	if !ok {
		return verdict{}, fmt.Errorf("not an object")
	}
	result, err := status.Compute(&unstructured.Unstructured{Object: converted})
	if err != nil {
		return verdict{}, err
	}
	return verdict{Status: result.Status.String(), Message: result.Message}, nil
}

func toInt64s(value any) any {
	switch value := value.(type) {
	case map[string]any:
		for key, item := range value {
			value[key] = toInt64s(item)
		}
		return value
	case []any:
		for index, item := range value {
			value[index] = toInt64s(item)
		}
		return value
	case json.Number:
		if integer, err := value.Int64(); err == nil {
			return integer
		}
		number, _ := value.Float64()
		return number
	default:
		return value
	}
}
