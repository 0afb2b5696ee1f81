package logs_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/singlehost/convox/logs"
)

func ExampleStore_Read() {
	dir, err := os.MkdirTemp("", "logs")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	s, err := logs.Open(dir, logs.Options{MaxBytes: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	t0 := time.Date(2026, 1, 15, 14, 30, 0, 0, time.UTC)
	s.Append("myapp", logs.Entry{Time: t0, Stream: "system/web", Message: "process web-zyxwv started"})

	// A container's output goes through a Source, which can resume
	// reading it after a restart: read it from src.Since() on.
	src, err := s.Source("myapp", "web-zyxwv")
	if err != nil {
		log.Fatal(err)
	}
	src.Append(logs.Entry{Time: t0.Add(time.Second), Stream: "service/web/web-zyxwv", Message: "Starting myapp on port 5000\n"})

	ch, err := s.Read(context.Background(), "myapp", logs.Query{Prefix: "service/"})
	if err != nil {
		log.Fatal(err)
	}
	for e := range ch {
		fmt.Println(e)
	}
	// Output:
	// 2026-01-15T14:30:01Z service/web/web-zyxwv Starting myapp on port 5000
}
