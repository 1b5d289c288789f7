package domain

import (
	"errors"
	"fmt"
)

// Sentinel errors of the domain.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
	// ErrForbidden: the actor may not do this (missing scope, granting more
	// than it holds).
	ErrForbidden = errors.New("forbidden")
)

// ValidationError describes bad input field by field.
type ValidationError struct {
	Problems []FieldProblem
}

// FieldProblem is one invalid field.
type FieldProblem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("%s: %s", e.Problems[0].Field, e.Problems[0].Message)
	}
	return fmt.Sprintf("%d invalid fields, first %s: %s", len(e.Problems), e.Problems[0].Field, e.Problems[0].Message)
}

// validation collects field problems.
type validation struct{ problems []FieldProblem }

func (v *validation) add(field, format string, args ...any) {
	v.problems = append(v.problems, FieldProblem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (v *validation) err() error {
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}
