package manifest

import (
	"maps"
	"testing"
)

func TestResourceLink_Vars(t *testing.T) {
	values := map[string]string{
		"URL": "postgres://app:pw@db:5432/app", "USER": "app", "PASS": "pw",
		"HOST": "db", "PORT": "5432", "NAME": "app",
	}
	tests := []struct {
		link ResourceLink
		want map[string]string
	}{
		{ResourceLink{Name: "db"}, map[string]string{
			"DB_URL": values["URL"], "DB_USER": "app", "DB_PASS": "pw", "DB_HOST": "db", "DB_PORT": "5432", "DB_NAME": "app",
		}},
		{ResourceLink{Name: "my-db"}, map[string]string{
			"MY_DB_URL": values["URL"], "MY_DB_USER": "app", "MY_DB_PASS": "pw", "MY_DB_HOST": "db", "MY_DB_PORT": "5432", "MY_DB_NAME": "app",
		}},
		{ResourceLink{Name: "db", Env: "DATABASE_URL"}, map[string]string{"DATABASE_URL": values["URL"]}},
		{ResourceLink{Name: "db", Env: "DATABASE_HOST"}, map[string]string{"DATABASE_HOST": "db"}},
		{ResourceLink{Name: "db", Env: "PG_PASS"}, map[string]string{"PG_PASS": "pw"}},
		{ResourceLink{Name: "db", Env: "CUSTOM_DATABASE"}, map[string]string{"CUSTOM_DATABASE": values["URL"]}},
		{ResourceLink{Name: "db", Env: "PORT"}, map[string]string{"PORT": values["URL"]}}, // no "_": the URL
		{ResourceLink{Name: "db", Env: "DB_port"}, map[string]string{"DB_port": values["URL"]}},
	}
	for _, tt := range tests {
		t.Run(tt.link.Name+":"+tt.link.Env, func(t *testing.T) {
			if got := tt.link.Vars(values); !maps.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestResourceLink_Vars_missingValues(t *testing.T) {
	// An overlaid resource (the release env already has DB_URL) has only a
	// URL; the other five are empty strings, not absent.
	got := ResourceLink{Name: "db"}.Vars(map[string]string{"URL": "postgres://elsewhere"})
	want := map[string]string{"DB_URL": "postgres://elsewhere", "DB_USER": "", "DB_PASS": "", "DB_HOST": "", "DB_PORT": "", "DB_NAME": ""}
	if !maps.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
