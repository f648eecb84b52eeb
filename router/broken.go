package router

import "errors"

// brokenComponent names a component that never starts: set only in the
// routerd_broken build, which the image's update tests install to see the
// box roll back by itself from a version that is never healthy.
var brokenComponent = ""

var errBroken = errors.New("broken on purpose: this is a routerd_broken test build")
