package manifest_test

import (
	"fmt"

	"github.com/singlehost/convox/manifest"
)

func ExampleLoad() {
	yml := []byte(`
environment:
  - SECRET
services:
  web:
    build: .
    port: https:3000
    domain: ${HOST}
    scale:
      count: 1-3
      memory: 1024
    helth: /check
`)
	env := map[string]string{"HOST": "www.example.org"}

	m, err := manifest.Load(yml, env)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range m.Services {
		fmt.Println(s.Name, s.Port.Scheme, s.Port.Port, s.Domains, s.Scale.Count.Min, s.Scale.Count.Max, s.Scale.Cpu, s.Scale.Memory, s.Health.Path)
	}
	for _, w := range m.Warnings {
		fmt.Println("warning:", w)
	}
	fmt.Println(m.RequiredEnv(env))
	// Output:
	// web https 3000 [www.example.org] 1 3 250 1024 /
	// warning: convox.yml:12: services.web.helth: unknown key (did you mean "health"?)
	// required env: SECRET
}
