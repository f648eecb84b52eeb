package config

import (
	"fmt"
	"strings"
)

// FieldError is one problem with one config value.
type FieldError struct {
	Path string // e.g. "lan[0].dhcp4.range"
	Msg  string // says what is wrong, quoting the offending value
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found in a config, in file order.
type Errors []FieldError

func (es Errors) Error() string {
	switch len(es) {
	case 0:
		return "no errors"
	case 1:
		return es[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d errors:", len(es))
	for _, e := range es {
		b.WriteString("\n  ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// problems accumulates errors and warnings during validation.
type problems struct {
	errs     Errors
	warnings []FieldError
}

func (p *problems) errf(path, format string, args ...any) {
	p.errs = append(p.errs, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func (p *problems) warnf(path, format string, args ...any) {
	p.warnings = append(p.warnings, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

func idx(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
