//go:build routerd_broken

package router

import (
	"context"
	"errors"
)

func init() {
	testBuild = func(cs []Component) []Component {
		for i, c := range cs {
			if c.Name() == "lan" {
				cs[i] = brokenComp{}
			}
		}
		return cs
	}
}

// brokenComp stands in for the LAN component and never starts.
type brokenComp struct{}

func (brokenComp) Name() string { return "lan" }
func (brokenComp) Start(context.Context) error {
	return errors.New("broken on purpose: this is a routerd_broken test build")
}
func (brokenComp) Stop(context.Context) error { return nil }
