package engine

// DefaultResourceImages is the image run for each resource type when the
// rack's configuration does not name another: the official images, at the
// versions Convox uses (spec §1.6). Tests point the rack at local stand-ins
// built by testdata/images instead, since their machines cannot pull.
func DefaultResourceImages() map[string]string {
	return map[string]string{
		"postgres":  "postgres:10.5",
		"mysql":     "mysql:5.7.23",
		"mariadb":   "mariadb:10.6.0",
		"redis":     "redis:4.0.10",
		"memcached": "memcached:1.4.34",
	}
}

// ResourceImage is the image the rack runs for a resource type, and whether
// the type is known.
func (e *Engine) ResourceImage(kind string) (string, bool) {
	img, ok := e.resourceImages[kind]
	return img, ok
}
