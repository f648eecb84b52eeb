//go:build routerd_broken

package router

func init() { brokenComponent = "lan" }
