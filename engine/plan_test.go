package engine

import (
	"testing"
)

func TestServiceSpec_Surge(t *testing.T) {
	tests := []struct {
		name               string
		count, min, max    int
		surge, unavailable int
	}{
		{"default 50/200", 2, 50, 200, 2, 1},
		{"one process", 1, 50, 200, 1, 0},
		{"singleton 0/100", 1, 0, 100, 0, 1},
		{"no surge, keep all", 3, 100, 100, 0, 1},
		{"small surge rounds up to one", 1, 100, 150, 1, 0},
		{"zero count", 0, 50, 200, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := serviceSpec{Count: tt.count, Minimum: tt.min, Maximum: tt.max}
			surge, unavailable := s.surge()
			if surge != tt.surge || unavailable != tt.unavailable {
				t.Errorf("surge() = %d, %d; want %d, %d", surge, unavailable, tt.surge, tt.unavailable)
			}
		})
	}
}

func TestVolumeMount(t *testing.T) {
	e := New(Config{Rack: "r"})
	tests := []struct {
		in   string
		want Mount
	}{
		{"/data", Mount{Volume: "r-app-web-data", Target: "/data"}},
		{"/var/lib/my_data", Mount{Volume: "r-app-web-var-lib-my-data", Target: "/var/lib/my_data"}},
		{"shared:/srv/shared", Mount{Volume: "r-app-shared", Target: "/srv/shared"}},
	}
	for _, tt := range tests {
		if got := e.volumeMount("app", "web", tt.in); got != tt.want {
			t.Errorf("volumeMount(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}
