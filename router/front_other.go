//go:build !linux

package router

import "context"

// frontLoops has no event loops here: Front serves with net/http alone.
type frontLoops struct{}

func (frontLoops) start(*Front) error { return errNoLoops }

func (frontLoops) stop(context.Context) error { return nil }
