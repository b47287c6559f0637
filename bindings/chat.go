package bindings

/*
#include <stdlib.h>
#include "llama.h"
*/
import "C"

import (
	"fmt"
	"math"
	"strings"
	"unsafe"
)

// ChatMessage is one turn of a conversation.
type ChatMessage struct {
	Role    string // "system", "user", "assistant", …
	Content string
}

// ApplyChatTemplate formats msgs with the model's own chat template (ChatTemplate);
// addAssistantPrompt ends the text with the opening of an assistant turn. It returns
// ErrNoChatTemplate when the model has none.
func (m *Model) ApplyChatTemplate(msgs []ChatMessage, addAssistantPrompt bool) (string, error) {
	if err := m.rlock(); err != nil {
		return "", err
	}
	m.mu.RUnlock()
	if m.chatTemplate == "" {
		return "", ErrNoChatTemplate
	}
	return ApplyChatTemplate(m.chatTemplate, msgs, addAssistantPrompt)
}

// ApplyChatTemplate formats msgs with tmpl, which is either a built-in template name
// (see BuiltinChatTemplates, e.g. "chatml", "llama3", "phi3") or a Jinja template text
// that llama.cpp recognizes by its markers. llama.cpp does not run Jinja: templates it
// cannot recognize return an error.
func ApplyChatTemplate(tmpl string, msgs []ChatMessage, addAssistantPrompt bool) (string, error) {
	// The C API takes NUL-terminated strings: an embedded NUL would silently cut the text.
	if strings.IndexByte(tmpl, 0) >= 0 {
		return "", fmt.Errorf("bindings: chat template contains a NUL byte")
	}
	for i, msg := range msgs {
		if strings.IndexByte(msg.Role, 0) >= 0 || strings.IndexByte(msg.Content, 0) >= 0 {
			return "", fmt.Errorf("bindings: chat message %d contains a NUL byte", i)
		}
	}
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))

	// The message array lives in Go memory but holds only C pointers, which cgo allows.
	cmsgs := make([]C.struct_llama_chat_message, len(msgs)+1) // +1 keeps &cmsgs[0] valid when empty
	total := 0
	for i, msg := range msgs {
		role := C.CString(msg.Role)
		defer C.free(unsafe.Pointer(role))
		content := C.CString(msg.Content)
		defer C.free(unsafe.Pointer(content))
		cmsgs[i] = C.struct_llama_chat_message{role: role, content: content}
		total += len(msg.Role) + len(msg.Content)
	}

	// llama.h recommends twice the message text; templates add fixed markers on top.
	buf := make([]byte, 2*total+256)
	for range 2 {
		n := C.llama_chat_apply_template(ctmpl, &cmsgs[0], C.size_t(len(msgs)), C.bool(addAssistantPrompt),
			(*C.char)(unsafe.Pointer(&buf[0])), C.int32_t(min(len(buf), math.MaxInt32)))
		if n < 0 {
			return "", fmt.Errorf("bindings: chat template %.40q is not one llama.cpp supports; see BuiltinChatTemplates", tmpl)
		}
		if int(n) <= len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, n)
	}
	return "", fmt.Errorf("bindings: chat template output size changed between calls")
}

// BuiltinChatTemplates returns the names of the templates llama.cpp implements natively.
func BuiltinChatTemplates() []string {
	n := C.llama_chat_builtin_templates(nil, 0)
	if n <= 0 {
		return nil
	}
	names := make([]*C.char, n)
	n = C.llama_chat_builtin_templates(&names[0], C.size_t(len(names)))
	out := make([]string, 0, n)
	for _, p := range names[:n] {
		out = append(out, C.GoString(p)) // static strings inside libllama
	}
	return out
}
