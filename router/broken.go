package router

// testBuild, when set, changes each generation's components as they are
// built. Only the routerd_broken build sets it (broken_build.go), which
// the image's update tests install to see the box roll back by itself from
// a version that is never healthy; the product's start loop knows nothing
// of it.
var testBuild func([]Component) []Component
