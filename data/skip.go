package data

import (
	"errors"
	"fmt"
)

// Reason says why a record was skipped; the manifest counts records per Reason.
type Reason string

// Reasons a record is skipped. Each skip is logged with its Source.
const (
	ReasonMalformedJSON     Reason = "malformed_json"      // a JSONL line or JSON element that does not parse
	ReasonMalformedCSV      Reason = "malformed_csv"       // a CSV/TSV row with bad quoting or the wrong number of fields
	ReasonMalformedRow      Reason = "malformed_row"       // a Parquet row that cannot be reconstructed
	ReasonUnknownShape      Reason = "unknown_shape"       // no known field set (see docs/formats.md)
	ReasonMissingField      Reason = "missing_field"       // a field the shape needs is absent
	ReasonWrongType         Reason = "wrong_type"          // a field has the wrong JSON type
	ReasonEmptyField        Reason = "empty_field"         // a required field is empty after cleaning
	ReasonInvalidRole       Reason = "invalid_role"        // a chat turn with a role we cannot map
	ReasonNoAssistantTurn   Reason = "no_assistant_turn"   // nothing to learn from
	ReasonTemplateError     Reason = "template_error"      // the template cannot render this conversation
	ReasonTooLong           Reason = "too_long"            // over MaxTokens after tokenization
	ReasonNoTrainableTokens Reason = "no_trainable_tokens" // the tokenized example has no loss tokens
	ReasonDuplicate         Reason = "duplicate"           // same content (exact or normalised) as an earlier record
)

// Skip records one skipped record: where it was, why, and a human-readable detail.
type Skip struct {
	Source Source `json:"source"`
	Reason Reason `json:"reason"`
	Detail string `json:"detail,omitempty"`
}

// String formats the skip as a log line.
func (s Skip) String() string {
	if s.Detail == "" {
		return fmt.Sprintf("%s: skipped (%s)", s.Source, s.Reason)
	}
	return fmt.Sprintf("%s: skipped (%s): %s", s.Source, s.Reason, s.Detail)
}

// RecordError is the error for a record that cannot become an Example; it
// carries the Reason so callers can count it.
type RecordError struct {
	Reason Reason
	Field  string // the offending field, as a path like messages[2].content; may be empty
	Detail string
}

// Error implements error.
func (e *RecordError) Error() string {
	switch {
	case e.Field != "" && e.Detail != "":
		return fmt.Sprintf("%s: field %s: %s", e.Reason, e.Field, e.Detail)
	case e.Field != "":
		return fmt.Sprintf("%s: field %s", e.Reason, e.Field)
	case e.Detail != "":
		return fmt.Sprintf("%s: %s", e.Reason, e.Detail)
	}
	return string(e.Reason)
}

func recordErr(reason Reason, field, format string, args ...any) *RecordError {
	return &RecordError{Reason: reason, Field: field, Detail: fmt.Sprintf(format, args...)}
}

// skipOf turns an error from the per-record stages into a Skip; errors that
// are not RecordErrors are reported as template errors, the only stage that
// calls out to caller code (templates, tokenizers) which returns plain errors.
func skipOf(src Source, err error) Skip {
	var re *RecordError
	if errors.As(err, &re) {
		detail := re.Detail
		if re.Field != "" {
			if detail != "" {
				detail = "field " + re.Field + ": " + detail
			} else {
				detail = "field " + re.Field
			}
		}
		return Skip{Source: src, Reason: re.Reason, Detail: detail}
	}
	return Skip{Source: src, Reason: ReasonTemplateError, Detail: err.Error()}
}
